//! `DELETE /v1/conversations/{conversationId}/messages/{messageId}/reactions/{emoji}`

use natter::domain::RemoveReaction;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<RemoveReaction>().await
}
