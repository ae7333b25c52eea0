//! Who a request is from: bearer tokens for the admin user and for service accounts
//! (minted by the TokenRequest API or `SandboxHandle::service_account_token`).
//!
//! A request without a token is the admin by default, like kube-apiserver's old insecure
//! port: the server speaks plain HTTP, and client-go (kubectl, helm) never sends a bearer
//! token over plain HTTP, so a tokenless request is how they reach it. With
//! `anonymous_is_admin` off, it is `system:anonymous` and RBAC decides.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use hyper::HeaderMap;

use crate::error::ApiError;

/// The admin token every kubeconfig the sandbox writes carries.
pub const ADMIN_TOKEN: &str = "kube-sandbox-admin";
pub const ADMIN_USER: &str = "kube-sandbox-admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn admin() -> Identity {
        Identity {
            user: ADMIN_USER.into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    pub fn anonymous() -> Identity {
        Identity {
            user: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    pub fn service_account(namespace: &str, name: &str) -> Identity {
        Identity {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    /// `(namespace, name)` when this is a service account.
    pub fn service_account_parts(&self) -> Option<(&str, &str)> {
        let rest = self.user.strip_prefix("system:serviceaccount:")?;
        rest.split_once(':')
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Issued tokens; they last as long as the process (they are not saved with the state).
pub struct Tokens {
    issued: Mutex<HashMap<String, Identity>>,
    anonymous_is_admin: bool,
}

impl Tokens {
    pub fn new(anonymous_is_admin: bool) -> Tokens {
        Tokens {
            issued: Mutex::new(HashMap::new()),
            anonymous_is_admin,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Identity>> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new token for a service account.
    pub fn issue(&self, namespace: &str, name: &str) -> String {
        let nonce: u128 = rand::random();
        let token = format!("kube-sandbox-sa.{namespace}.{name}.{nonce:032x}");
        self.lock()
            .insert(token.clone(), Identity::service_account(namespace, name));
        token
    }

    /// `kubectl --as`: a `system:masters` caller may act as another user (and groups); a
    /// service-account user name brings that account's groups.
    pub fn impersonate(&self, caller: Identity, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let Some(user) = headers
            .get("impersonate-user")
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(caller);
        };
        if !caller.in_group("system:masters") {
            return Err(ApiError::Forbidden(format!(
                "users \"{user}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                caller.user
            )));
        }
        let mut who = match user
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
        {
            Some((ns, name)) => Identity::service_account(ns, name),
            None => Identity {
                user: user.to_string(),
                groups: vec!["system:authenticated".into()],
            },
        };
        for g in headers
            .get_all("impersonate-group")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            if !who.in_group(g) {
                who.groups.push(g.to_string());
            }
        }
        Ok(who)
    }

    /// The identity behind a request's `Authorization: Bearer` header; an unknown token is
    /// 401; no header is the admin or `system:anonymous` (see the module comment).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let Some(value) = headers.get(hyper::header::AUTHORIZATION) else {
            return Ok(if self.anonymous_is_admin {
                Identity::admin()
            } else {
                Identity::anonymous()
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::Unauthorized("only bearer tokens are accepted".into()))?;
        if token == ADMIN_TOKEN {
            return Ok(Identity::admin());
        }
        self.lock()
            .get(token)
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("the bearer token is not known".into()))
    }
}
