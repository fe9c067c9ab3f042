//! Routing: a listener's rules, compiled once, matched in order (first match wins) on the
//! request and the client's verified certificate, each leading to its action: a target group
//! (with the listener's own connection pool for it), a weighted choice among groups, a fixed
//! response or a redirect.

mod weighted;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{FixedResponse, Redirect, RequestFacts, Routes, Rule, RuleAction};
use crate::upstream::client::{self, TargetClient, UpstreamError};
use crate::upstream::TargetGroup;
use weighted::Weighted;

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
    /// Its place in [`Router::routes`] (and so in the listener's request metrics).
    pub index: usize,
}

/// A listener's rules, compiled, each with what it leads to.
#[derive(Debug)]
pub struct Router {
    rules: Vec<(Rule, Compiled)>,
    routes: Vec<Route>,
    default: Compiled,
}

/// An action with its groups resolved to indexes into `Router::routes`.
#[derive(Debug)]
enum Compiled {
    Forward(usize),
    Weighted(Weighted),
    Fixed(FixedResponse),
    Redirect(Redirect),
}

/// What the request path does with a request: the action of the rule that matched, or the
/// listener's default.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Forward(&'a Route),
    FixedResponse(&'a FixedResponse),
    Redirect(&'a Redirect),
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy)]
pub struct Matched<'a> {
    /// Index of the rule that matched; `None` for the default action.
    pub rule: Option<usize>,
    pub action: Action<'a>,
}

/// Builds the listener's routes, one per group its actions name, in first-use order.
struct Resolver<'g> {
    groups: &'g BTreeMap<String, Arc<TargetGroup>>,
    connect_timeout: Duration,
    routes: Vec<Route>,
}

impl Resolver<'_> {
    fn index_of(&mut self, name: &str) -> Result<usize, RouteError> {
        if let Some(i) = self.routes.iter().position(|r| r.group.name() == name) {
            return Ok(i);
        }
        let group = self
            .groups
            .get(name)
            .cloned()
            .ok_or_else(|| RouteError::UnknownGroup {
                group: name.to_string(),
            })?;
        let client = client::client(&group.config, self.connect_timeout)?;
        let index = self.routes.len();
        self.routes.push(Route {
            group,
            client,
            index,
        });
        Ok(index)
    }

    fn compile(&mut self, action: &RuleAction) -> Result<Compiled, RouteError> {
        Ok(match action {
            RuleAction::Forward { target_group } => Compiled::Forward(self.index_of(target_group)?),
            RuleAction::Weighted(groups) => {
                let mut weights = Vec::with_capacity(groups.len());
                for g in groups {
                    weights.push((self.index_of(&g.target_group)?, g.weight));
                }
                Compiled::Weighted(Weighted::new(&weights))
            }
            RuleAction::FixedResponse(f) => Compiled::Fixed(f.clone()),
            RuleAction::Redirect(r) => Compiled::Redirect(r.clone()),
        })
    }
}

impl Router {
    pub fn new(
        config: &Routes,
        groups: &BTreeMap<String, Arc<TargetGroup>>,
        connect_timeout: Duration,
    ) -> Result<Router, RouteError> {
        let mut resolver = Resolver {
            groups,
            connect_timeout,
            routes: Vec::new(),
        };
        let default = resolver.compile(&config.default_action)?;
        let mut rules = Vec::new();
        for r in &config.rules {
            rules.push((r.clone(), resolver.compile(&r.action)?));
        }
        Ok(Router {
            rules,
            routes: resolver.routes,
            default,
        })
    }

    /// What to do with a request: the action of the first rule that matches, else the default.
    pub fn route(&self, request: &RequestFacts<'_>) -> Matched<'_> {
        let found = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, (r, _))| r.matches(request));
        match found {
            Some((i, (_, compiled))) => Matched {
                rule: Some(i),
                action: self.action(compiled),
            },
            None => Matched {
                rule: None,
                action: self.action(&self.default),
            },
        }
    }

    fn action<'a>(&'a self, compiled: &'a Compiled) -> Action<'a> {
        match compiled {
            Compiled::Forward(g) => Action::Forward(&self.routes[*g]),
            Compiled::Weighted(w) => Action::Forward(&self.routes[w.pick()]),
            Compiled::Fixed(f) => Action::FixedResponse(f),
            Compiled::Redirect(r) => Action::Redirect(r),
        }
    }

    /// The rules in order, as configured.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|(r, _)| r)
    }

    /// Every group this listener may send requests to.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}
