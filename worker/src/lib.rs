//! The pushsync worker library. For now it holds the dispatch rules (which
//! Applications a push affects); the consumer loop lives in `main.rs` until
//! the worker issue moves it here.

pub mod apply;
pub mod dispatch;
pub mod git;
pub mod health;
pub mod ignore;
pub mod index;
pub mod metrics;
pub mod pipeline;
pub mod plan;
pub mod render;
pub mod status;
pub mod sync;
