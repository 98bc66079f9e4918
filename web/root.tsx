import type { ReactNode } from 'react';
import { Form, Links, Meta, Outlet, Scripts, ScrollRestoration, isRouteErrorResponse, useRouteLoaderData } from 'react-router';
import type { Route } from './+types/root.ts';
import { services } from './auth.server.ts';
import { useNonce } from './nonce.tsx';
import './styles.css';

export async function loader({ request, context }: Route.LoaderArgs) {
  const user = await services(context).auth.currentUser(request.headers.get('cookie'));
  return { user: user ? { name: user.name, email: user.email } : null };
}

export function Layout({ children }: { children: ReactNode }) {
  const data = useRouteLoaderData<typeof loader>('root');
  const nonce = useNonce();
  return (
    <html lang="en">
      <head>
        <meta charSet="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%2310213d'/%3E%3Cpath d='M4 12V4h5a2 2 0 0 1 0 4H4m5 0a2 2 0 0 1 0 4H4' stroke='%23fff' fill='none' stroke-width='1.6'/%3E%3C/svg%3E" />
        <Meta />
        <Links />
      </head>
      <body>
        <header className="topbar">
          <a href="/" className="brand">Berth</a>
          <nav>
            {data?.user ? (
              <>
                <a href="/dashboard">Dashboard</a>
                <a href="/chat">Chat</a>
                <a href="/terminal">Terminal</a>
                <a href="/billing">Billing</a>
                <a href="/settings">Settings</a>
                <span className="muted-light">{data.user.name}</span>
                <Form method="post" action="/logout"><button type="submit">Sign out</button></Form>
              </>
            ) : (
              <>
                <a href="/dashboard">Dashboard</a>
                <a href="/login">Sign in</a>
                <a href="/register">Create account</a>
              </>
            )}
          </nav>
        </header>
        <main>{children}</main>
        <ScrollRestoration nonce={nonce} />
        <Scripts nonce={nonce} />
      </body>
    </html>
  );
}

export default function App() {
  return <Outlet />;
}

export function ErrorBoundary({ error }: Route.ErrorBoundaryProps) {
  const title = isRouteErrorResponse(error) ? `${error.status} ${error.statusText}` : 'Something went wrong';
  const detail = isRouteErrorResponse(error)
    ? error.status === 404 ? 'There is no page at this address.' : String(error.data ?? '')
    : 'We have been told and are looking into it.';
  return (
    <section className="card">
      <h1>{title}</h1>
      <p>{detail}</p>
      <p><a href="/">Back to the start</a></p>
    </section>
  );
}
