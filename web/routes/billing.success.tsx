import { redirect } from 'react-router';

// Stripe Checkout returns here; the webhook, not this page, is what makes the payment count.
export function loader() {
  return redirect('/billing?notice=success');
}
