//! Routing: a listener's rules, compiled once, matched in order (first match wins), each
//! leading to a target group and the listener's own connection pool for it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Routes;
use crate::config::Rule;
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

/// A listener's rules, compiled, with the group each one leads to.
#[derive(Debug)]
pub struct Router {
    rules: Vec<(Rule, usize)>,
    routes: Vec<Route>,
    default: usize,
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
            rules.push((r.clone(), index_of(&r.target_group)?));
        }
        Ok(Router {
            rules,
            routes,
            default,
        })
    }

    /// The route for a request: the first rule that matches, else the default group.
    pub fn route(&self, host: Option<&str>, path: &str) -> &Route {
        let i = self
            .rules
            .iter()
            .find(|(r, _)| r.matches(host, path))
            .map_or(self.default, |(_, i)| *i);
        &self.routes[i]
    }

    pub fn default_route(&self) -> &Route {
        &self.routes[self.default]
    }
}
