export function helper(): string { return 'ok'; }
