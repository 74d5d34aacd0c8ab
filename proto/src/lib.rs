//! einfo's protobuf contracts (`einfo.<service>.v1`): generated messages, clients and servers,
//! and the descriptor set that server reflection serves.
#![allow(clippy::all, missing_docs)]

pub mod codec;

/// Encoded `FileDescriptorSet` of every einfo proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/einfo_descriptor.bin"));

/// The gRPC name of every einfo service and the path of every method, generated from the protos:
/// `methods::registry::registry_service::REGISTER_SITE` is `/einfo.registry.v1.RegistryService/RegisterSite`.
pub mod methods {
    include!(concat!(env!("OUT_DIR"), "/methods.rs"));
}

pub mod auth {
    pub mod v1 {
        tonic::include_proto!("einfo.auth.v1");
    }
}

pub mod log {
    pub mod v1 {
        tonic::include_proto!("einfo.log.v1");
    }
}

pub mod central {
    pub mod v1 {
        tonic::include_proto!("einfo.central.v1");
    }
}

pub mod reporting {
    pub mod v1 {
        tonic::include_proto!("einfo.reporting.v1");
    }
}

pub mod inspection {
    pub mod v1 {
        tonic::include_proto!("einfo.inspection.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("einfo.gateway.v1");
    }
}

pub mod registry {
    pub mod v1 {
        tonic::include_proto!("einfo.registry.v1");
    }
}

pub use prost;
pub use prost_types;
