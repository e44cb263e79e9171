//! Frame Streams (farsightsec's fstrm, `fstrm/control.h`): the framing of a
//! dnstap stream and its control frames, pure encode and decode.
//!
//! A stream is a sequence of frames, each a 32-bit big-endian length and
//! that many bytes. A data frame has a non-zero length. A zero length is an
//! escape: a control frame follows, as its own 32-bit length (at most
//! [`CONTROL_MAX`]) and payload: a 32-bit type, then fields, each a 32-bit
//! field type (only `CONTENT_TYPE` = 1 exists), a 32-bit length and the
//! bytes (at most [`CONTENT_TYPE_MAX`]).
//!
//! The bidirectional handshake a writer does on a socket: it sends READY
//! with the content types it can write, the reader answers ACCEPT with
//! those it takes, the writer sends START with the one chosen, then data
//! frames; to close, the writer sends STOP and the reader answers FINISH.
//! [`check_accept`] is the writer's judgement of the ACCEPT.

use thiserror::Error;

/// The content type of dnstap's data frames.
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// The longest control frame payload (`FSTRM_CONTROL_FRAME_LENGTH_MAX`).
pub const CONTROL_MAX: usize = 512;
/// The longest content type (`FSTRM_CONTROL_FIELD_CONTENT_TYPE_LENGTH_MAX`).
pub const CONTENT_TYPE_MAX: usize = 256;
/// The control frame field type of a content type.
const FIELD_CONTENT_TYPE: u32 = 1;

/// A control frame's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    /// The reader takes the stream (with the content types it takes).
    Accept = 1,
    /// The stream's data frames follow (with their content type).
    Start = 2,
    /// The writer ends the stream.
    Stop = 3,
    /// The writer offers a stream (with the content types it can write).
    Ready = 4,
    /// The reader acknowledges STOP.
    Finish = 5,
}

impl ControlKind {
    /// The kind numbered `n`, if any.
    fn from_u32(n: u32) -> Option<Self> {
        Some(match n {
            1 => Self::Accept,
            2 => Self::Start,
            3 => Self::Stop,
            4 => Self::Ready,
            5 => Self::Finish,
            _ => return None,
        })
    }
}

/// A decoded control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlFrame {
    /// Its type.
    pub kind: ControlKind,
    /// Its `CONTENT_TYPE` fields, in order.
    pub content_types: Vec<Vec<u8>>,
}

/// One frame of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A data frame's payload.
    Data(&'a [u8]),
    /// A control frame.
    ControlFrame(ControlFrame),
}

/// Why bytes are not a valid Frame Streams frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A control frame longer than [`CONTROL_MAX`].
    #[error("control frame of {0} bytes (at most {CONTROL_MAX})")]
    ControlTooLong(usize),
    /// A control frame too short for its type, or a field running past its end.
    #[error("truncated control frame")]
    Truncated,
    /// An unknown control frame type.
    #[error("unknown control frame type {0}")]
    UnknownKind(u32),
    /// An unknown control frame field.
    #[error("unknown control frame field {0}")]
    UnknownField(u32),
    /// A content type longer than [`CONTENT_TYPE_MAX`].
    #[error("content type of {0} bytes (at most {CONTENT_TYPE_MAX})")]
    ContentTypeTooLong(usize),
    /// More content types than the frame's type allows (START: 1, STOP and
    /// FINISH: 0).
    #[error("{0:?} with {1} content types")]
    TooManyContentTypes(ControlKind, usize),
}

/// Why a collector's handshake cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The collector answered READY with another control frame.
    #[error("expected ACCEPT, got {0:?}")]
    NotAccept(ControlKind),
    /// The collector's ACCEPT does not list dnstap's content type.
    #[error("the collector does not accept protobuf:dnstap.Dnstap")]
    ContentType,
    /// The collector sent a data frame.
    #[error("the collector sent a data frame")]
    Data,
}

/// A control frame of `kind` with an optional content type, escape and
/// length included: ready to write.
///
/// # Panics
///
/// Never for the constant content types this crate writes; a content type
/// longer than [`CONTENT_TYPE_MAX`] is a bug (debug builds assert it).
pub fn encode_control(kind: ControlKind, content_type: Option<&[u8]>) -> Vec<u8> {
    let field_len = content_type.map_or(0, |c| 8 + c.len());
    debug_assert!(content_type.is_none_or(|c| c.len() <= CONTENT_TYPE_MAX));
    let payload_len = 4 + field_len;
    let mut out = Vec::with_capacity(8 + payload_len);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&be32(payload_len));
    out.extend_from_slice(&(kind as u32).to_be_bytes());
    if let Some(c) = content_type {
        out.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        out.extend_from_slice(&be32(c.len()));
        out.extend_from_slice(c);
    }
    out
}

/// `n` as a 32-bit big-endian length (saturated: every length this crate
/// writes is far below 2^32).
fn be32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// The 4-byte header of a data frame of `len` bytes, or `None` when `len`
/// is 0 (that would be an escape) or does not fit 32 bits.
pub fn data_header(len: usize) -> Option<[u8; 4]> {
    let n = u32::try_from(len).ok().filter(|&n| n > 0)?;
    Some(n.to_be_bytes())
}

/// Decodes a control frame's payload (after the escape and the length).
///
/// # Errors
///
/// A frame too long or truncated, an unknown type or field, an oversized
/// content type, or too many content types for the type.
pub fn decode_control(payload: &[u8]) -> Result<ControlFrame, FrameError> {
    if payload.len() > CONTROL_MAX {
        return Err(FrameError::ControlTooLong(payload.len()));
    }
    let (kind, mut rest) = take_u32(payload)?;
    let kind = ControlKind::from_u32(kind).ok_or(FrameError::UnknownKind(kind))?;
    let mut content_types = Vec::new();
    while !rest.is_empty() {
        let (field, after) = take_u32(rest)?;
        if field != FIELD_CONTENT_TYPE {
            return Err(FrameError::UnknownField(field));
        }
        let (len, after) = take_u32(after)?;
        let len = len as usize;
        if len > CONTENT_TYPE_MAX {
            return Err(FrameError::ContentTypeTooLong(len));
        }
        let value = after.get(..len).ok_or(FrameError::Truncated)?;
        content_types.push(value.to_vec());
        rest = &after[len..];
    }
    let allowed = match kind {
        ControlKind::Start => 1,
        ControlKind::Stop | ControlKind::Finish => 0,
        ControlKind::Accept | ControlKind::Ready => usize::MAX,
    };
    if content_types.len() > allowed {
        return Err(FrameError::TooManyContentTypes(kind, content_types.len()));
    }
    Ok(ControlFrame {
        kind,
        content_types,
    })
}

/// The first frame of `buf` and the bytes it took, or `None` when `buf`
/// does not hold a whole frame yet.
///
/// # Errors
///
/// As [`decode_control`] for a control frame.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, FrameError> {
    let Ok((len, rest)) = take_u32(buf) else {
        return Ok(None);
    };
    if len != 0 {
        let len = len as usize;
        return Ok(rest.get(..len).map(|data| (Frame::Data(data), 4 + len)));
    }
    let Ok((len, rest)) = take_u32(rest) else {
        return Ok(None);
    };
    let len = len as usize;
    if len > CONTROL_MAX {
        return Err(FrameError::ControlTooLong(len));
    }
    match rest.get(..len) {
        Some(payload) => Ok(Some((
            Frame::ControlFrame(decode_control(payload)?),
            8 + len,
        ))),
        None => Ok(None),
    }
}

/// The writer's judgement of the reader's answer to READY: an ACCEPT that
/// lists dnstap's content type (an ACCEPT listing none takes any, as fstrm
/// reads it).
///
/// # Errors
///
/// Anything but such an ACCEPT.
pub fn check_accept(frame: &Frame<'_>) -> Result<(), HandshakeError> {
    let control = match frame {
        Frame::Data(_) => return Err(HandshakeError::Data),
        Frame::ControlFrame(c) => c,
    };
    if control.kind != ControlKind::Accept {
        return Err(HandshakeError::NotAccept(control.kind));
    }
    let listed = control.content_types.iter().any(|c| c == CONTENT_TYPE);
    if control.content_types.is_empty() || listed {
        Ok(())
    } else {
        Err(HandshakeError::ContentType)
    }
}

/// A big-endian u32 from the front of `b`, and the rest.
fn take_u32(b: &[u8]) -> Result<(u32, &[u8]), FrameError> {
    match b.split_first_chunk::<4>() {
        Some((n, rest)) => Ok((u32::from_be_bytes(*n), rest)),
        None => Err(FrameError::Truncated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// READY with dnstap's content type, byte for byte as fstrm writes it.
    const READY: &[u8] = b"\0\0\0\0\0\0\0\x22\0\0\0\x04\0\0\0\x01\0\0\0\x16protobuf:dnstap.Dnstap";

    #[test]
    fn control_frames_are_written_as_fstrm_writes_them() {
        assert_eq!(
            encode_control(ControlKind::Ready, Some(CONTENT_TYPE)),
            READY
        );
        assert_eq!(
            encode_control(ControlKind::Stop, None),
            b"\0\0\0\0\0\0\0\x04\0\0\0\x03"
        );
        let start = encode_control(ControlKind::Start, Some(CONTENT_TYPE));
        assert_eq!(&start[8..12], &2u32.to_be_bytes());
        assert_eq!(&start[4..8], &(start.len() as u32 - 8).to_be_bytes());
    }

    #[test]
    fn each_control_frame_decodes_to_what_was_encoded() {
        for kind in [
            ControlKind::Accept,
            ControlKind::Start,
            ControlKind::Stop,
            ControlKind::Ready,
            ControlKind::Finish,
        ] {
            let ct = if matches!(kind, ControlKind::Stop | ControlKind::Finish) {
                None
            } else {
                Some(CONTENT_TYPE)
            };
            let bytes = encode_control(kind, ct);
            let (frame, used) = decode(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            let want = ControlFrame {
                kind,
                content_types: ct.map(<[u8]>::to_vec).into_iter().collect(),
            };
            assert_eq!(frame, Frame::ControlFrame(want));
        }
    }

    #[test]
    fn a_stream_splits_into_its_frames_and_waits_for_the_rest_of_one() {
        let mut stream = encode_control(ControlKind::Start, Some(CONTENT_TYPE));
        let start_len = stream.len();
        stream.extend_from_slice(&data_header(3).unwrap());
        stream.extend_from_slice(b"abc");
        stream.extend_from_slice(&encode_control(ControlKind::Stop, None));
        let mut rest = stream.as_slice();
        let mut seen = Vec::new();
        while let Some((frame, used)) = decode(rest).unwrap() {
            seen.push(frame);
            rest = &rest[used..];
        }
        assert!(rest.is_empty());
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1], Frame::Data(b"abc"));
        // Every cut short of a whole frame is "not yet", never an error.
        for cut in 0..stream.len() {
            let first = decode(&stream[..cut]).unwrap();
            assert_eq!(first.is_some(), cut >= start_len, "cut at {cut}");
        }
    }

    #[test]
    fn data_headers_never_escape() {
        assert_eq!(data_header(0), None);
        assert_eq!(data_header(300), Some([0, 0, 1, 44]));
    }

    #[test]
    fn hostile_control_frames_are_refused() {
        let frame = |payload: &[u8]| {
            let mut b = vec![0, 0, 0, 0];
            b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            b.extend_from_slice(payload);
            b
        };
        let cases: [(&[u8], FrameError); 6] = [
            (b"\0\0\0\x09", FrameError::UnknownKind(9)),
            (b"\0\0\0\x01\0\0\0\x02\0\0\0\0", FrameError::UnknownField(2)),
            (b"\0\0\0\x01\0\0\0\x01\0\0\0\x09abc", FrameError::Truncated),
            (
                b"\0\0\0\x01\0\0\0\x01\0\0\x01\x01",
                FrameError::ContentTypeTooLong(257),
            ),
            (
                b"\0\0\0\x03\0\0\0\x01\0\0\0\x01x",
                FrameError::TooManyContentTypes(ControlKind::Stop, 1),
            ),
            (b"\0\0", FrameError::Truncated),
        ];
        for (payload, err) in cases {
            assert_eq!(decode(&frame(payload)), Err(err), "{payload:?}");
        }
        let mut long = vec![0, 0, 0, 0];
        long.extend_from_slice(&513u32.to_be_bytes());
        assert_eq!(decode(&long), Err(FrameError::ControlTooLong(513)));
    }

    #[test]
    fn the_writer_goes_on_only_after_an_accept_of_dnstap() {
        let control = |kind, cts: &[&[u8]]| {
            Frame::ControlFrame(ControlFrame {
                kind,
                content_types: cts.iter().map(|c| c.to_vec()).collect(),
            })
        };
        assert_eq!(
            check_accept(&control(ControlKind::Accept, &[CONTENT_TYPE])),
            Ok(())
        );
        let both: &[&[u8]] = &[b"protobuf:other", CONTENT_TYPE];
        assert_eq!(check_accept(&control(ControlKind::Accept, both)), Ok(()));
        assert_eq!(check_accept(&control(ControlKind::Accept, &[])), Ok(()));
        assert_eq!(
            check_accept(&control(ControlKind::Accept, &[b"protobuf:other"])),
            Err(HandshakeError::ContentType)
        );
        assert_eq!(
            check_accept(&control(ControlKind::Finish, &[])),
            Err(HandshakeError::NotAccept(ControlKind::Finish))
        );
        assert_eq!(check_accept(&Frame::Data(b"x")), Err(HandshakeError::Data));
    }
}
