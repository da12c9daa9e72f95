//! Record use cases: typed records submitted by their owner agency and read by the others in the view the access matrix gives them.

use std::sync::Arc;

use super::AppState;

mod list;
pub mod row;
mod submit;
mod view;

pub(crate) use crate::informant::informant_context;
pub(crate) use view::{View, ViewCache, is_owner, record_name, resource_of};
use view::{etag, named_record, new_resource};

/// Most items in one batch call.
pub const BATCH_MAX: usize = 1000;

#[derive(Clone)]
pub struct RecordApi {
    pub(crate) state: Arc<AppState>,
}

impl RecordApi {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}
