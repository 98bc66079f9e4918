/**
 * Formatting for mail bodies: money in minor units, dates, sizes. Pure functions, no I/O.
 */

/**
 * Currencies whose Stripe amounts are already whole units (no minor unit). From Stripe's
 * "zero-decimal currencies" list; Stripe, not ISO 4217, decides how our integer amounts scale.
 */
const zeroDecimal = new Set(['BIF', 'CLP', 'DJF', 'GNF', 'JPY', 'KMF', 'KRW', 'MGA', 'PYG', 'RWF', 'UGX', 'VND', 'VUV', 'XAF', 'XOF', 'XPF']);
/** Stripe's three-decimal currencies: amounts are in thousandths. */
const threeDecimal = new Set(['BHD', 'JOD', 'KWD', 'OMR', 'TND']);

/**
 * How many decimal places one of Stripe's integer amounts carries for this currency. Differs from
 * Intl's currency digits on purpose: Stripe keeps ISK two-decimal in its API (100 = 1 krona) while
 * ISO 4217 says ISK has none.
 */
export function minorUnitExponent(currency: string): number {
  const code = currency.toUpperCase();
  if (zeroDecimal.has(code)) return 0;
  if (threeDecimal.has(code)) return 3;
  return 2;
}

/**
 * `amountMinor` (an integer in the currency's minor unit, as Stripe gives it) as a localized money
 * string: formatMoney(1999, 'usd') → "$19.99", formatMoney(500, 'JPY') → "¥500".
 */
export function formatMoney(amountMinor: number, currency: string, locale = 'en-US'): string {
  if (!Number.isSafeInteger(amountMinor)) throw new RangeError(`amount must be an integer in minor units, got ${amountMinor}`);
  const code = currency.toUpperCase();
  const exponent = minorUnitExponent(code);
  // Intl rounds to the currency's display digits, so a division's float noise never shows.
  const major = amountMinor / 10 ** exponent;
  return new Intl.NumberFormat(locale, { style: 'currency', currency: code }).format(major);
}

const dateFormat = new Intl.DateTimeFormat('en-US', { dateStyle: 'long', timeZone: 'UTC' });
const dateTimeFormat = new Intl.DateTimeFormat('en-US', { dateStyle: 'long', timeStyle: 'short', timeZone: 'UTC' });

/** "March 14, 2026": the day in UTC, so every reader sees the same date the system acts on. */
export function formatDate(iso: string): string {
  return dateFormat.format(new Date(iso));
}

/** "March 14, 2026 at 9:30 AM UTC". */
export function formatDateTime(iso: string): string {
  return `${dateTimeFormat.format(new Date(iso))} UTC`;
}

/** 1536 → "1.5 KB"; binary multiples, one decimal place. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}
