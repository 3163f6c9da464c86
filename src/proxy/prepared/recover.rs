//! The recovery itself, on the session's quiet upstream connection: the
//! pinned text is prepared under a name of the proxy's own and described;
//! only when its result shape equals the remembered one does it replace the
//! client's statement (Close + Parse under the client's name).

use super::store::same_shape;
use crate::net::stream::Stream;
use crate::proxy::exchange::next_frame;
use crate::wire::messages::{self, SYNC};
use bytes::BytesMut;
use std::io;
use tokio::io::AsyncWriteExt;

/// The name the proxy tries the pinned text under (a dot keeps it apart
/// from the names drivers generate).
const TRIAL: &[u8] = b"ddlguard.reprepare";

/// What to re-prepare.
pub struct Plan<'a> {
    /// The client's statement name.
    pub name: &'a [u8],
    /// The pinned text.
    pub sql: &'a str,
    /// The text the client parsed it with (put back if the replacement
    /// fails, so the client's statement is never left closed).
    pub original: &'a str,
    /// Parameter types as the client parsed the statement with.
    pub param_types: &'a [u8],
    /// The remembered RowDescription body.
    pub shape: &'a [u8],
    /// The remembered ParameterDescription body, if the client described
    /// the statement.
    pub params: Option<&'a [u8]>,
}

/// Why a recovery was given up (the client then gets the original error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The pinned text failed to parse on the server.
    #[error("the pinned statement failed on the server")]
    Failed,
    /// The pinned text describes a different result (a dropped, renamed or
    /// retyped column).
    #[error("the pinned statement's result differs from the remembered one")]
    ShapeDiffers,
    /// Its parameters would be typed differently.
    #[error("the pinned statement's parameters differ from the remembered ones")]
    ParamsDiffer,
    /// Replacing the client's statement failed.
    #[error("replacing the client's statement failed")]
    ReplaceFailed,
}

/// Runs the recovery. `buf` holds server bytes already read (consumed from
/// the front); asynchronous messages meant for the client go, framed, to
/// `for_client`.
pub async fn run(
    server: &mut Stream,
    buf: &mut BytesMut,
    plan: &Plan<'_>,
    for_client: &mut Vec<u8>,
) -> io::Result<Result<(), Refusal>> {
    let mut out = messages::parse_typed(TRIAL, plan.sql, plan.param_types);
    out.extend(messages::target_message(b'D', b'S', TRIAL));
    out.extend(messages::target_message(b'C', b'S', TRIAL));
    out.extend_from_slice(&SYNC);
    let replies = round_trip(server, buf, &out, for_client).await?;
    if replies.iter().any(|(tag, _)| *tag == b'E') {
        return Ok(Err(Refusal::Failed));
    }
    let described = replies.iter().find(|(tag, _)| *tag == b'T');
    if !described.is_some_and(|(_, body)| same_shape(plan.shape, body)) {
        return Ok(Err(Refusal::ShapeDiffers));
    }
    if let Some(params) = plan.params {
        let now = replies.iter().find(|(tag, _)| *tag == b't');
        if now.is_none_or(|(_, body)| body != params) {
            return Ok(Err(Refusal::ParamsDiffer));
        }
    }
    let mut out = messages::target_message(b'C', b'S', plan.name);
    out.extend(messages::parse_typed(plan.name, plan.sql, plan.param_types));
    out.extend_from_slice(&SYNC);
    let replies = round_trip(server, buf, &out, for_client).await?;
    if replies.iter().any(|(tag, _)| *tag == b'E') {
        // The Close took effect and the Parse did not: the client's name
        // gets its own text back, as it had before (its next execution
        // then fails as it would have without the proxy).
        let mut out = messages::target_message(b'C', b'S', plan.name);
        out.extend(messages::parse_typed(
            plan.name,
            plan.original,
            plan.param_types,
        ));
        out.extend_from_slice(&SYNC);
        round_trip(server, buf, &out, for_client).await?;
        return Ok(Err(Refusal::ReplaceFailed));
    }
    Ok(Ok(()))
}

/// Sends `out` and reads to ReadyForQuery; returns the other replies
/// (type, body), asynchronous ones excepted.
async fn round_trip(
    server: &mut Stream,
    buf: &mut BytesMut,
    out: &[u8],
    for_client: &mut Vec<u8>,
) -> io::Result<Vec<(u8, Vec<u8>)>> {
    server.write_all(out).await?;
    server.flush().await?;
    let mut replies = Vec::new();
    loop {
        let frame = next_frame(server, buf).await?;
        match frame[0] {
            b'Z' => return Ok(replies),
            b'A' | b'S' | b'N' => for_client.extend_from_slice(&frame),
            tag => replies.push((tag, frame[5..].to_vec())),
        }
    }
}
