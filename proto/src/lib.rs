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

        /// A site's operating state as the figures count it (`SiteCount.operating` and
        /// `not_operating`): unknown, operating, not operating.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub enum Operating {
            /// Nobody said (OPERATIONAL_STATE_UNSPECIFIED).
            #[default]
            Unknown = 0,
            /// Serving content (ACTIVE).
            Operating = 1,
            /// Stopped by its owner, or did not answer when last checked (INACTIVE, UNREACHABLE).
            NotOperating = 2,
        }

        impl Operating {
            /// The value stored in a count table's column.
            pub fn code(self) -> i32 {
                self as i32
            }

            /// The value of a stored code (an unknown code reads as unknown).
            pub fn from_code(code: i32) -> Self {
                match code {
                    1 => Self::Operating,
                    2 => Self::NotOperating,
                    _ => Self::Unknown,
                }
            }
        }

        impl Site {
            /// How the figures count its operating state.
            pub fn operating(&self) -> Operating {
                match self.operational_state() {
                    OperationalState::Active => Operating::Operating,
                    OperationalState::Inactive | OperationalState::Unreachable => Operating::NotOperating,
                    OperationalState::Unspecified => Operating::Unknown,
                }
            }

            /// Whether the figures count it as on trial: its flag, or the TRIAL status an
            /// older node derived (before trial operation was a flag beside the legal status).
            pub fn on_trial(&self) -> bool {
                self.trial || self.legal_status == LegalStatus::Trial as i32
            }
        }
    }
}

pub use prost;
pub use prost_types;
