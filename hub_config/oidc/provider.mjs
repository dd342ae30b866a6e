// Development identity provider: a real OpenID Connect provider (npm `oidc-provider`) on loopback.
// In production the city's provider replaces it; the hub only ever sees standard OIDC.
//
// Usage: node provider.mjs <config.json>
// config.json: {"host": "127.0.0.1", "port": 8900, "accounts_file": ".../accounts.json",
//               "clients": [{"client_id", "client_secret", "redirect_uris": [...],
//                            "post_logout_redirect_uris": [...]}],
//               "session_ttl_seconds": 28800}
// accounts.json: {"accounts": [{"username", "name", "email", "groups": [...],
//                               "password_hash": "scrypt$<salt b64>$<key b64>"}]}
// The built-in development login accepts any password, so this script mounts its own
// interaction routes: a login form that checks the password, then automatic consent for
// the registered (first-party) client.
import { readFileSync } from 'node:fs';
import { randomBytes, generateKeyPairSync, scryptSync, timingSafeEqual } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const host = config.host ?? '127.0.0.1';
if (host !== '127.0.0.1' && host !== 'localhost') throw new Error('the development provider listens on loopback only');

// Accounts are re-read at each login so that `enclave hub oidc` can add people without a restart.
function loadAccounts() {
  const { accounts } = JSON.parse(readFileSync(config.accounts_file, 'utf8'));
  return new Map(accounts.map((a) => [a.username, a]));
}

function passwordMatches(account, password) {
  const [scheme, salt, key] = String(account.password_hash ?? '').split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = scryptSync(password, Buffer.from(salt, 'base64'), expected.length, { N: 16384, r: 8, p: 1 });
  return timingSafeEqual(actual, expected);
}

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const sessionTtl = config.session_ttl_seconds ?? 8 * 3600;

const provider = new Provider(`http://${host}:${config.port}`, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    post_logout_redirect_uris: c.post_logout_redirect_uris ?? [],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_post',
  })),
  async findAccount(ctx, sub) {
    const account = loadAccounts().get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          preferred_username: account.username,
          name: account.name ?? account.username,
          email: account.email,
          groups: account.groups ?? [],
        };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email'],
    groups: ['groups'],
  },
  scopes: ['openid', 'profile', 'email', 'groups'],
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  cookies: { keys: [randomBytes(32).toString('base64')] },
  jwks: { keys: [{ ...signingKey, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }] },
  ttl: { Session: sessionTtl, Grant: sessionTtl, AccessToken: 3600, IdToken: 3600, Interaction: 600, AuthorizationCode: 60 },
});

async function formBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function loginPage(uid, message) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Enclave sign-in</title></head>
<body style="font-family:sans-serif;max-width:22em;margin:3em auto">
<h1>Research enclave sign-in</h1>${message ? `<p role="alert" style="color:#a00">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login" autocomplete="off">
<label>Username <input name="login" required autofocus></label><br>
<label>Password <input name="password" type="password" required></label><br>
<button type="submit">Sign in</button></form></body></html>`;
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!match) return next();
  ctx.set('Cache-Control', 'no-store');
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const { uid, prompt, params, session } = details;
  if (prompt.name === 'login') {
    if (ctx.method === 'GET' && !match[2]) {
      ctx.type = 'html';
      ctx.body = loginPage(uid);
      return undefined;
    }
    if (ctx.method !== 'POST' || !match[2]) ctx.throw(405);
    const form = await formBody(ctx.req);
    const account = loadAccounts().get(form.get('login') ?? '');
    if (!account || !passwordMatches(account, form.get('password') ?? '')) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = loginPage(uid, 'Unknown username or wrong password.');
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: account.username } }, { mergeWithLastSubmission: false });
  }
  if (prompt.name === 'consent') {
    // The hub is the only, first-party client: consent is granted for what it asked.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    return provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  ctx.throw(501, `interaction ${prompt.name} not supported`);
  return undefined;
});

const server = provider.listen(config.port, host, () => {
  process.stdout.write(`oidc-provider ready ${provider.issuer}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
