//! Routing tests over the planner (no servers needed).
