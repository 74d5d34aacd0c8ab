//! The codec every einfo client and server is generated with: prost's, except that a message
//! that does not decode is the sender's fault — `INVALID_ARGUMENT`, reason `MALFORMED_MESSAGE`,
//! with a field violation — where tonic answers `INTERNAL`.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec as TonicCodec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `google.rpc.ErrorInfo.reason` of a message that does not decode (domain `einfo`).
pub const MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";

/// prost's codec with decode errors as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::default()))
    }
}

/// prost's decoder, its errors as `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct MessageDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|internal| {
            let why = format!("the message is not a valid {}: {}", std::any::type_name::<U>(), internal.message());
            let mut details = ErrorDetails::new();
            details.set_error_info(MALFORMED_MESSAGE, "einfo", std::collections::HashMap::new());
            details.set_bad_request(vec![FieldViolation::new("(message)", why.clone())]);
            Status::with_error_details(tonic::Code::InvalidArgument, why, details)
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
