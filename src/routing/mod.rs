//! Routing: a listener's rules, compiled once, matched in order (first match wins) on the
//! request and the client's verified certificate, each leading to its action: a target group
//! (with the listener's own connection pool for it) or a fixed response.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{FixedResponse, RequestFacts, Routes, Rule, RuleAction};
use crate::upstream::client::{self, TargetClient, UpstreamError};
use crate::upstream::TargetGroup;

/// Why a listener's routes cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("target_group.{group}: is not defined")]
    UnknownGroup { group: String },
    #[error(transparent)]
    Client(#[from] UpstreamError),
}

/// A group as one listener uses it: the shared health state and the listener's own pool.
#[derive(Debug)]
pub struct Route {
    pub group: Arc<TargetGroup>,
    pub client: TargetClient,
}

/// A listener's rules, compiled, each with what it leads to.
#[derive(Debug)]
pub struct Router {
    rules: Vec<(Rule, Compiled)>,
    routes: Vec<Route>,
    default: usize,
}

/// A rule's action with its group resolved to an index into `Router::routes`.
#[derive(Debug)]
enum Compiled {
    Forward(usize),
    Fixed(FixedResponse),
}

/// What the request path does with a request: the action of the rule that matched, or the
/// listener's default.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Forward(&'a Route),
    FixedResponse(&'a FixedResponse),
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// Index of the rule that matched; `None` for the default action.
    pub rule: Option<usize>,
    pub action: Action<'a>,
}

impl Router {
    pub fn new(
        config: &Routes,
        groups: &BTreeMap<String, Arc<TargetGroup>>,
        connect_timeout: Duration,
    ) -> Result<Router, RouteError> {
        let mut routes: Vec<Route> = Vec::new();
        let mut index_of = |name: &str| -> Result<usize, RouteError> {
            if let Some(i) = routes.iter().position(|r| r.group.name() == name) {
                return Ok(i);
            }
            let group = groups
                .get(name)
                .cloned()
                .ok_or_else(|| RouteError::UnknownGroup {
                    group: name.to_string(),
                })?;
            let client = client::client(&group.config, connect_timeout)?;
            routes.push(Route { group, client });
            Ok(routes.len() - 1)
        };
        let default = index_of(&config.default_target_group)?;
        let mut rules = Vec::new();
        for r in &config.rules {
            let compiled = match &r.action {
                RuleAction::Forward { target_group } => Compiled::Forward(index_of(target_group)?),
                RuleAction::FixedResponse(f) => Compiled::Fixed(f.clone()),
            };
            rules.push((r.clone(), compiled));
        }
        Ok(Router {
            rules,
            routes,
            default,
        })
    }

    /// What to do with a request: the action of the first rule that matches, else the default
    /// group.
    pub fn route(&self, request: &RequestFacts<'_>) -> Matched<'_> {
        let found = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, (r, _))| r.matches(request));
        let Some((i, (_, compiled))) = found else {
            return Matched {
                rule: None,
                action: Action::Forward(self.default_route()),
            };
        };
        let action = match compiled {
            Compiled::Forward(g) => Action::Forward(&self.routes[*g]),
            Compiled::Fixed(f) => Action::FixedResponse(f),
        };
        Matched {
            rule: Some(i),
            action,
        }
    }

    pub fn default_route(&self) -> &Route {
        &self.routes[self.default]
    }
}
