//! Target groups: several targets behind one name, the choice of a target per request
//! (round robin or least outstanding requests), and each target's health as active checks
//! and failed connections report it.
//!
//! Health follows ALB: a target leaves rotation after `unhealthy_threshold` failed checks in a
//! row, and comes back after `healthy_threshold` passed ones. A connection certgate cannot open
//! takes the target out at once (the passive check); the active checks bring it back. When no
//! target is healthy, every target gets traffic (ALB's fail-open). Targets start healthy, so a
//! proxy that starts serves at once.

pub mod client;
pub mod health;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::collections::BTreeMap;

use crate::config::{Algorithm, TargetGroupConfig, TargetUrl};

/// One target of a group, shared by every listener that routes to the group.
#[derive(Debug)]
pub struct Target {
    pub url: TargetUrl,
    healthy: AtomicBool,
    /// Requests sent to this target whose response headers have not arrived yet.
    outstanding: AtomicUsize,
    /// Consecutive check results in the direction opposite to the current state.
    streak: Mutex<u32>,
}

impl Target {
    fn new(url: TargetUrl) -> Self {
        Target {
            url,
            healthy: AtomicBool::new(true),
            outstanding: AtomicUsize::new(0),
            streak: Mutex::new(0),
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }
}

/// Why a target's health changed, for the one log line per change.
#[derive(Debug, Clone)]
pub enum HealthEvent {
    CheckPassed,
    CheckFailed(String),
    ConnectFailed(String),
}

#[derive(Debug)]
pub struct TargetGroup {
    pub config: TargetGroupConfig,
    pub targets: Vec<Arc<Target>>,
    next: AtomicUsize,
}

/// A target chosen for one request; counts it as outstanding until dropped.
#[derive(Debug)]
pub struct Pick {
    pub target: Arc<Target>,
}

impl Drop for Pick {
    fn drop(&mut self) {
        self.target.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl TargetGroup {
    pub fn new(config: TargetGroupConfig) -> Self {
        let targets = config
            .targets
            .iter()
            .cloned()
            .map(|u| Arc::new(Target::new(u)))
            .collect();
        TargetGroup {
            config,
            targets,
            next: AtomicUsize::new(0),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The target for the next request, skipping those in `exclude` (already tried for this
    /// request). `None` when the group has no target left to try.
    pub fn pick(&self, exclude: &[Arc<Target>]) -> Option<Pick> {
        // Runs for every request: no allocation, two passes over the (few) targets.
        let usable = |t: &Arc<Target>| !exclude.iter().any(|e| Arc::ptr_eq(e, t));
        // Fail open: with no healthy target left, every target is a candidate.
        let any_healthy = self.targets.iter().any(|t| t.is_healthy() && usable(t));
        let candidate = |t: &&Arc<Target>| usable(t) && (!any_healthy || t.is_healthy());
        let n = self.targets.iter().filter(candidate).count();
        if n == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut candidates = self.targets.iter().filter(candidate);
        let chosen = match self.config.algorithm {
            Algorithm::RoundRobin => candidates.nth(turn),
            // Fewest outstanding requests; ties go to the first at or after this turn, so
            // equal targets share the load.
            Algorithm::LeastOutstandingRequests => candidates
                .enumerate()
                .min_by_key(|(i, t)| (t.outstanding(), (i + n - turn) % n))
                .map(|(_, t)| t),
        }?;
        chosen.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Pick {
            target: chosen.clone(),
        })
    }

    /// Applies one health observation; returns the new state when it changed.
    pub fn observe(&self, target: &Target, event: &HealthEvent) -> Option<bool> {
        let (passed, threshold) = match event {
            HealthEvent::CheckPassed => (true, self.config.health_check.healthy_threshold),
            HealthEvent::CheckFailed(_) => (false, self.config.health_check.unhealthy_threshold),
            HealthEvent::ConnectFailed(_) => (false, 1),
        };
        if !self.config.health_check.enabled {
            // Without active checks nothing would bring a target back: keep it in rotation.
            return None;
        }
        let mut streak = target.streak.lock().unwrap_or_else(PoisonError::into_inner);
        if passed == target.is_healthy() {
            *streak = 0;
            return None;
        }
        *streak += 1;
        if *streak < threshold {
            return None;
        }
        *streak = 0;
        target.healthy.store(passed, Ordering::Relaxed);
        let reason = match event {
            HealthEvent::CheckPassed => format!(
                "passed {} health check(s) in a row",
                self.config.health_check.healthy_threshold
            ),
            HealthEvent::CheckFailed(why) => format!(
                "failed {} health check(s) in a row, last: {why}",
                self.config.health_check.unhealthy_threshold
            ),
            HealthEvent::ConnectFailed(why) => format!("connection failed: {why}"),
        };
        let healthy_now = self.targets.iter().filter(|t| t.is_healthy()).count();
        if passed {
            tracing::info!(
                target_group = %self.name(),
                target = %target.url.url,
                healthy_targets = healthy_now,
                "target healthy: {reason}"
            );
        } else {
            tracing::warn!(
                target_group = %self.name(),
                target = %target.url.url,
                healthy_targets = healthy_now,
                "target unhealthy: {reason}{}",
                if healthy_now == 0 {
                    "; no healthy target left, sending to all (fail open)"
                } else {
                    ""
                }
            );
        }
        Some(passed)
    }
}

/// Every target group of a configuration, built once and shared by the listeners.
pub fn groups(config: &crate::config::Config) -> BTreeMap<String, Arc<TargetGroup>> {
    config
        .target_groups
        .iter()
        .map(|(name, g)| (name.clone(), Arc::new(TargetGroup::new(g.clone()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthCheckConfig;

    fn group(n: usize, algorithm: Algorithm) -> TargetGroup {
        TargetGroup::new(TargetGroupConfig {
            name: "g".into(),
            targets: (0..n)
                .map(|i| TargetUrl::parse(&format!("http://127.0.0.1:{}", 1000 + i)).unwrap())
                .collect(),
            algorithm,
            health_check: HealthCheckConfig::default(),
            tls: Default::default(),
            from_backend_shorthand: false,
            protocol_version: Default::default(),
        })
    }

    fn port(p: &Pick) -> u16 {
        p.target.url.authority.port_u16().unwrap()
    }

    #[test]
    fn round_robin_visits_every_healthy_target_in_turn() {
        let g = group(3, Algorithm::RoundRobin);
        let ports: Vec<u16> = (0..6).map(|_| port(&g.pick(&[]).unwrap())).collect();
        assert_eq!(ports, [1000, 1001, 1002, 1000, 1001, 1002]);
        g.observe(&g.targets[1], &HealthEvent::ConnectFailed("refused".into()));
        let ports: Vec<u16> = (0..4).map(|_| port(&g.pick(&[]).unwrap())).collect();
        assert!(!ports.contains(&1001), "{ports:?}");
    }

    #[test]
    fn thresholds_decide_when_health_changes() {
        let g = group(2, Algorithm::RoundRobin);
        let t = &g.targets[0];
        let fail = HealthEvent::CheckFailed("503".into());
        assert_eq!(
            g.observe(t, &fail),
            None,
            "one failure is not enough (threshold 2)"
        );
        assert_eq!(
            g.observe(t, &HealthEvent::CheckPassed),
            None,
            "streak broken"
        );
        assert_eq!(g.observe(t, &fail), None);
        assert_eq!(g.observe(t, &fail), Some(false));
        for _ in 1..HealthCheckConfig::default().healthy_threshold {
            assert_eq!(g.observe(t, &HealthEvent::CheckPassed), None);
        }
        assert_eq!(g.observe(t, &HealthEvent::CheckPassed), Some(true));
    }

    #[test]
    fn all_unhealthy_fails_open_and_empty_group_has_no_pick() {
        let g = group(2, Algorithm::RoundRobin);
        for t in &g.targets {
            g.observe(t, &HealthEvent::ConnectFailed("x".into()));
        }
        let mut seen: Vec<u16> = (0..4).map(|_| port(&g.pick(&[]).unwrap())).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, [1000, 1001]);
        assert!(group(0, Algorithm::RoundRobin).pick(&[]).is_none());
        // Retries exclude what was tried.
        let first = g.pick(&[]).unwrap();
        let second = g.pick(std::slice::from_ref(&first.target)).unwrap();
        assert_ne!(port(&first), port(&second));
        assert!(g
            .pick(&[first.target.clone(), second.target.clone()])
            .is_none());
    }

    #[test]
    fn least_outstanding_prefers_the_idle_target() {
        let g = group(3, Algorithm::LeastOutstandingRequests);
        let a = g.pick(&[]).unwrap();
        let b = g.pick(&[]).unwrap();
        let c = g.pick(&[]).unwrap();
        let mut ports = vec![port(&a), port(&b), port(&c)];
        ports.sort();
        assert_eq!(ports, [1000, 1001, 1002], "each busy once");
        let freed = port(&b);
        drop(b);
        for _ in 0..3 {
            let p = g.pick(&[]).unwrap();
            assert_eq!(port(&p), freed);
        }
    }
}
