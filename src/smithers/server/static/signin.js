/* The sign-in form of a server with a token: the token is posted once to POST /v1/session,
 * which answers with an HttpOnly cookie; the page never keeps the token. */
import { api, describeError } from "./api.js";
import { setNav } from "./chrome.js";
import { fill, h, setText } from "./dom.js";

let shown = false;

export const signingIn = () => shown;

/** Replace the page with the form; `signedIn()` runs once the cookie is set. */
export function showSignIn(app, signedIn) {
  if (shown) return;
  shown = true;
  const input = h("input", { type: "password", id: "token", name: "token", autocomplete: "current-password", required: true, placeholder: "API token" });
  const msg = h("p", { class: "error-text small", role: "alert" });
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "panel signin", id: "signin" },
    h("h1", null, "Sign in"),
    h("p", { class: "muted" }, "This smithers server needs its API token (the value of ", h("code", null, "--auth-token"),
      " or ", h("code", null, "$SMITHERS_API_KEY"), "). It is exchanged for a browser session cookie."),
    h("label", { for: "token" }, "Token"), input, button, msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    setText(msg, "");
    try {
      await api("/v1/session", { method: "POST", body: { token: input.value }, quiet: true });
      shown = false;
      signedIn();
    } catch (e) {
      setText(msg, e.status === 401 || e.status === 403 ? "That token is not valid." : describeError(e));
      button.disabled = false;
      input.select();
    }
  });
  fill(app, form);
  setNav(null);
  input.focus();
}
