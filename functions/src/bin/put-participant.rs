//! `PUT /v1/conversations/{conversationId}/participants/{userId}`

use natter::domain::PutParticipant;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    natter_functions::serve_http::<PutParticipant>().await
}
