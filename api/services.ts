/** What the web app's loaders and actions may use on the server; built by api/main.ts. */
export interface WebServices {
  appUrl: string;
}
