// The API token a person typed once: kept for this browser session (sessionStorage), sent as
// X-Auth-Token on every request, never put in a URL.

const KEY = "dvr-token";

export function storedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}

/** Request headers carrying the token, when there is one. */
export function authHeaders(): Record<string, string> {
  const token = storedToken();
  return token ? { "X-Auth-Token": token } : {};
}
