//! Single sign-on: OpenID Connect's authorization-code flow with PKCE
//! (the `openidconnect` crate), calls to the provider made with
//! `pushsync_forge::HttpsClient` (rustls with ring, the platform's roots, no
//! redirects followed). The in-flight login (state, nonce, PKCE verifier,
//! where to go next) waits in the encrypted session cookie; the callback
//! checks the state, exchanges the code with the verifier, verifies the ID
//! token's signature, issuer, audience, expiry and nonce, and takes the
//! user's name and groups from its claims.

use std::collections::BTreeMap;

use actix_session::Session;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use pushsync_forge::HttpsClient;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ServerError;
use crate::policy::User;

/// How to reach the identity provider.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The issuer URL (discovery at `/.well-known/openid-configuration` under it).
    pub issuer: String,
    /// This server's client id at the provider.
    pub client_id: String,
    /// Its secret (absent for a public client).
    pub client_secret: Option<String>,
    /// Where the provider sends the browser back: `https://…/auth/callback`.
    pub redirect_url: String,
    /// The ID-token claim listing the user's groups.
    pub groups_claim: String,
    /// Scopes asked for (`openid` is always asked).
    pub scopes: Vec<String>,
}

/// Every claim the ID token carries beyond the standard ones, so the groups
/// claim can be named by configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<IdFields, CoreTokenType>;
type IdToken = openidconnect::IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// A login waiting for the provider's answer.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    next: String,
}

const PENDING_KEY: &str = "oidc";

/// The identity provider, discovered.
pub struct Oidc {
    /// Replaced when the provider's signing keys change (rediscovery).
    client: std::sync::RwLock<OidcClient>,
    /// When the provider was last discovered: rediscovery waits a minute.
    discovered: std::sync::Mutex<std::time::Instant>,
    http: HttpsClient,
    settings: Settings,
}

/// How soon the provider may be discovered again after a token whose key
/// is not known (providers rotate keys; Dex every six hours).
const REDISCOVER_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// A transport failure, as openidconnect wants it typed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

async fn call(
    http: HttpsClient,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, HttpError> {
    http.send(request)
        .await
        .map_err(|e| HttpError(e.to_string()))
}

impl Oidc {
    /// Discover the provider (its endpoints and signing keys).
    pub async fn discover(settings: Settings) -> Result<Oidc, String> {
        let http = HttpsClient::new(std::time::Duration::from_secs(10))
            .map_err(|e| format!("no HTTPS client: {e}"))?;
        let client = Self::client_of(&settings, &http).await?;
        Ok(Oidc {
            client: std::sync::RwLock::new(client),
            discovered: std::sync::Mutex::new(std::time::Instant::now()),
            http,
            settings,
        })
    }

    async fn client_of(settings: &Settings, http: &HttpsClient) -> Result<OidcClient, String> {
        let issuer = IssuerUrl::new(settings.issuer.clone())
            .map_err(|e| format!("--oidc-issuer {:?}: {e}", settings.issuer))?;
        let redirect = RedirectUrl::new(settings.redirect_url.clone())
            .map_err(|e| format!("--oidc-redirect-url {:?}: {e}", settings.redirect_url))?;
        let client_http = http.clone();
        let send = move |request| call(client_http.clone(), request);
        let metadata = CoreProviderMetadata::discover_async(issuer, &send)
            .await
            .map_err(|e| format!("discovering the provider {}: {e}", settings.issuer))?;
        Ok(OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(settings.client_id.clone()),
            settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    fn client(&self) -> OidcClient {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Discover the provider again (new signing keys), at most once a
    /// minute; the new client, or `None` when it is too soon or fails.
    async fn rediscover(&self) -> Option<OidcClient> {
        {
            let mut last = self
                .discovered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.elapsed() < REDISCOVER_AFTER {
                return None;
            }
            *last = std::time::Instant::now();
        }
        match Self::client_of(&self.settings, &self.http).await {
            Ok(client) => {
                *self
                    .client
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = client.clone();
                tracing::info!("identity provider discovered again (signing keys refreshed)");
                Some(client)
            }
            Err(error) => {
                tracing::warn!(%error, "discovering the identity provider again failed");
                None
            }
        }
    }

    /// The user an ID token names, verified with `client`'s keys.
    fn user_of(&self, client: &OidcClient, token: &IdToken, nonce: &Nonce) -> Result<User, String> {
        let claims = token
            .claims(&client.id_token_verifier(), nonce)
            .map_err(|e| e.to_string())?;
        let name = claims
            .preferred_username()
            .map(|u| u.to_string())
            .or_else(|| claims.email().map(|e| e.to_string()))
            .unwrap_or_else(|| claims.subject().to_string());
        let groups = match claims
            .additional_claims()
            .rest
            .get(&self.settings.groups_claim)
        {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(User { name, groups })
    }

    /// Start a login: remember what the callback must check, and where to
    /// send the browser.
    pub fn begin(&self, session: &Session, next: &str) -> Result<String, ServerError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client();
        let mut request = client.authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        session
            .insert(
                PENDING_KEY,
                Pending {
                    state: state.secret().clone(),
                    nonce: nonce.secret().clone(),
                    verifier: verifier.secret().clone(),
                    next: next.to_owned(),
                },
            )
            .map_err(|e| ServerError::Internal(format!("writing the session: {e}")))?;
        Ok(url.to_string())
    }

    /// Finish a login from the provider's answer; the user and where to go.
    pub async fn finish(
        &self,
        session: &Session,
        code: &str,
        state: &str,
    ) -> Result<(User, String), ServerError> {
        let pending: Pending = session
            .remove_as(PENDING_KEY)
            .and_then(Result::ok)
            .ok_or_else(|| {
                ServerError::Invalid("no login is waiting for this answer (start again)".to_owned())
            })?;
        // Constant time is not needed for the state: it is single-use and
        // bound to this browser's encrypted session.
        if pending.state != state {
            return Err(ServerError::Invalid(
                "the provider's answer is for another login (state mismatch)".to_owned(),
            ));
        }
        let http = self.http.clone();
        let send = move |request| call(http.clone(), request);
        let client = self.client();
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ServerError::Internal(format!("the provider has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&send)
            .await
            .map_err(|e| ServerError::Provider(format!("exchanging the login code: {e}")))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| ServerError::Invalid("the provider sent no ID token".to_owned()))?;
        let nonce = Nonce::new(pending.nonce);
        let user = match self.user_of(&client, id_token, &nonce) {
            Ok(user) => user,
            // Signed with a key this server has not seen: the provider may
            // have rotated its keys.
            Err(first) => match self.rediscover().await {
                Some(fresh) => self.user_of(&fresh, id_token, &nonce),
                None => Err(first),
            }
            .map_err(|e| ServerError::Invalid(format!("the ID token does not verify: {e}")))?,
        };
        Ok((user, pending.next))
    }
}
