//! The collector's read-only web pages: the status page (`page`: what it
//! shows and its HTML; `history`: the last hour of each node for its charts).

pub mod history;
pub mod page;
