import { expect, test } from 'vitest';
import { settingsSchema } from '../../api/services.ts';
import { liveBlocker } from '../../web/live/socket.ts';

const errorsOf = (form: Record<string, string>) => {
  const parsed = settingsSchema.safeParse(form);
  return parsed.success ? {} : Object.fromEntries(parsed.error.issues.map((i) => [String(i.path[0]), i.message]));
};

test('the settings form accepts provider/model names, known time zones and plausible keys; empty keeps', () => {
  expect(errorsOf({ model: 'anthropic/claude-sonnet-4-5', timeZone: 'Europe/Berlin', apiKey: 'sk-ant-0123456789abcdefghij' })).toEqual({});
  expect(errorsOf({ model: '', timeZone: '', apiKey: '' })).toEqual({});
  expect(settingsSchema.parse({ model: '  openai/gpt-5  ', timeZone: 'UTC', apiKey: '' }).model).toBe('openai/gpt-5');
});

test('the settings form refuses bad input with a sentence per field', () => {
  expect(errorsOf({ model: 'not a model', timeZone: 'Mars/Olympus', apiKey: 'short key' })).toEqual({
    model: 'Write the model as provider/model, e.g. anthropic/claude-sonnet-4-5.',
    timeZone: 'Choose a time zone from the list.',
    apiKey: 'That does not look like an API key: at least 20 characters, no spaces.',
  });
  expect(errorsOf({ model: 'a/b', timeZone: '', apiKey: `sk-${'x'.repeat(600)}` }).apiKey).toBe('That key is longer than 500 characters.');
  expect(errorsOf({ model: 'anthropic/claude; rm -rf /', timeZone: '', apiKey: '' }).model).toMatch(/provider\/model/);
});

test('terminal and chat say why they cannot connect before trying', () => {
  expect(liveBlocker(null)).toMatch(/no server yet/);
  expect(liveBlocker({ stage: 'awaiting_payment', server: null })).toMatch(/no server yet/);
  expect(liveBlocker({ stage: 'provisioning', server: { power: 'running' } })).toMatch(/being set up/);
  expect(liveBlocker({ stage: 'idle', server: { power: 'hibernated' } })).toMatch(/resting/);
  expect(liveBlocker({ stage: 'active', server: { power: 'running' } })).toBeNull();
});
