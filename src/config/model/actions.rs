//! What a rule or a listener's default does with a request (SPEC §9, §14; ALB's rule actions):
//! forward to one target group or split by weight, answer with a fixed response, or redirect.

/// Exactly one action (ALB's rule actions). A rule's `authenticate_jwt` runs before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Send the request to this target group.
    Forward { target_group: String },
    /// Send the request to one of these groups, chosen in proportion to their weights
    /// (ALB's weighted forward: weights 0–999, at least one above 0).
    Weighted(Vec<WeightedGroup>),
    /// Answer the request without a target.
    FixedResponse(FixedResponse),
    /// Answer with a redirect built from the request's own URL parts.
    Redirect(Redirect),
}

/// One group of a weighted forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedGroup {
    pub target_group: String,
    pub weight: u16,
}

/// Highest weight ALB accepts in a weighted forward.
pub const MAX_FORWARD_WEIGHT: u16 = 999;
/// Most target groups ALB accepts in one weighted forward.
pub const MAX_FORWARD_GROUPS: usize = 5;

impl RuleAction {
    /// The action in the words of `check`'s summary.
    pub fn describe(&self) -> String {
        match self {
            RuleAction::Forward { target_group } => format!("target group {target_group}"),
            RuleAction::Weighted(groups) => {
                let parts: Vec<String> = groups
                    .iter()
                    .map(|g| format!("{} (weight {})", g.target_group, g.weight))
                    .collect();
                format!("forward to {}", parts.join(", "))
            }
            RuleAction::FixedResponse(f) => {
                format!("fixed response {} ({})", f.status_code, f.content_type)
            }
            RuleAction::Redirect(r) => format!("redirect {} to {}", r.status_code, r.template()),
        }
    }

    /// The target groups this action may send requests to.
    pub fn target_groups(&self) -> Vec<&str> {
        match self {
            RuleAction::Forward { target_group } => vec![target_group.as_str()],
            RuleAction::Weighted(groups) => {
                groups.iter().map(|g| g.target_group.as_str()).collect()
            }
            RuleAction::FixedResponse(_) | RuleAction::Redirect(_) => Vec::new(),
        }
    }
}

/// ALB's fixed-response action: a status of 2XX, 4XX or 5XX, one of ALB's content types, and a
/// body of at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedResponse {
    pub status_code: u16,
    pub content_type: &'static str,
    pub message_body: String,
}

/// The content types ALB's fixed responses may have.
pub const FIXED_RESPONSE_CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

/// Longest fixed-response body ALB accepts, in bytes.
pub const MAX_FIXED_RESPONSE_BODY: usize = 1024;

/// ALB's redirect action. Each part is a template that may hold the placeholders `#{protocol}`,
/// `#{host}`, `#{port}`, `#{path}` (without its leading `/`) and `#{query}` (without `?`);
/// a part left out keeps the request's own value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `HTTP`, `HTTPS` or `#{protocol}`.
    pub protocol: String,
    pub host: String,
    /// A port number or `#{port}`, as a string (ALB's API).
    pub port: String,
    /// Starts with `/`.
    pub path: String,
    pub query: String,
    /// 301 or 302.
    pub status_code: u16,
}

impl Redirect {
    /// The redirect's URL template, for `check`.
    pub fn template(&self) -> String {
        let query = if self.query.is_empty() {
            String::new()
        } else {
            format!("?{}", self.query)
        };
        format!(
            "{}://{}:{}{}{query}",
            self.protocol.to_ascii_lowercase(),
            self.host,
            self.port,
            self.path
        )
    }
}
