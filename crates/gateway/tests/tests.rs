//! Gateway tests against real HTTP servers on loopback.

mod routing;
