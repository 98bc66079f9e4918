/** The mail side of Berth: templates, rendering, transports and the send activity. */
export { createMailActivities, mailIdempotencyKey, type MailActivities, type MailDeps, type SendMailInput, type SendMailResult } from './send.ts';
export { createMailTransport, createResendTransport, createSmtpTransport, MailTransportError, type MailTransport, type MailTransportConfig, type OutgoingMail } from './transport.ts';
export { MailDataError, renderAll, renderMail, type MailSamples, type RenderedMail } from './render.ts';
export { isMailKind, mailKinds, mailRegistry, type MailData, type MailKind } from './registry.ts';
export { mailSamples } from './samples.ts';
export { createEmailLogStore, type EmailLogStore } from './email-log.ts';
