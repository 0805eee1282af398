// The browser tests' identity provider: oidc-provider (a certified OpenID
// Provider) with two users in two groups. Its built-in login pages accept
// any password for a known user. Configured by the test through the
// environment; prints "ready" when it listens.
import path from "node:path";

const tools = process.env.PUSHSYNC_UI_TOOLS;
const { default: Provider } = await import(path.join(tools, "node_modules/oidc-provider/lib/index.js"));
const port = Number(process.env.IDP_PORT);
const issuer = `http://127.0.0.1:${port}`;
const users = {
  alice: { name: "Alice", groups: ["team-a"] },
  bob: { name: "Bob", groups: ["team-b"] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: "pushsync",
    client_secret: process.env.IDP_CLIENT_SECRET,
    redirect_uris: [process.env.IDP_REDIRECT_URI],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  claims: { openid: ["sub"], profile: ["name", "preferred_username"], groups: ["groups"] },
  scopes: ["openid", "profile", "groups"],
  // Scope claims (groups) in the ID token, where the server reads them.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["pushsync-browser-tests-only"] },
  async findAccount(ctx, sub) {
    const user = users[sub];
    if (!user) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { sub, name: user.name, preferred_username: sub, groups: user.groups };
      },
    };
  },
  // One client, trusted: no consent page.
  async loadExistingGrant(ctx) {
    const id = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (id) return ctx.oidc.provider.Grant.find(id);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile groups");
    grant.addOIDCClaims(["name", "preferred_username", "groups"]);
    await grant.save();
    return grant;
  },
});
provider.listen(port, "127.0.0.1", () => console.log("ready"));
