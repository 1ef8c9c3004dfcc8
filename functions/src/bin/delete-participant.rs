//! `DELETE /v1/conversations/{conversationId}/participants/{userId}`

use natter::domain::DeleteParticipant;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<DeleteParticipant>().await
}
