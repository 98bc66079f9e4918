import { type RouteConfig, index, route } from '@react-router/dev/routes';

export default [
  index('routes/home.tsx'),
  route('register', 'routes/register.tsx'),
  route('login', 'routes/login.tsx'),
  route('logout', 'routes/logout.tsx'),
  route('forgot-password', 'routes/forgot-password.tsx'),
  route('reset-password', 'routes/reset-password.tsx'),
  route('verify-email', 'routes/verify-email.tsx'),
  route('confirm-password', 'routes/confirm-password.tsx'),
  route('dashboard', 'routes/dashboard.tsx'),
  route('terminal', 'routes/terminal.tsx'),
  route('chat', 'routes/chat.tsx'),
  route('settings', 'routes/settings.tsx'),
  route('billing', 'routes/billing.tsx'),
  route('billing/success', 'routes/billing.success.tsx'),
  route('billing/canceled', 'routes/billing.canceled.tsx'),
] satisfies RouteConfig;
