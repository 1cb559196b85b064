//! The collector's read-only web pages: the status page (`page`: what it
//! shows and its HTML; `view`: gathering it from the store and the engine;
//! `history`: the last hour of each node for its charts).

pub mod history;
pub mod page;
pub mod view;
