//! The record type codes the zone code names as numbers, since it reads and
//! writes records in wire form (RFC 1035, RFC 4034, RFC 5155, RFC 6672,
//! RFC 7344): one list, rather than a few in each file.

pub(crate) const A: u16 = 1;
pub(crate) const NS: u16 = 2;
pub(crate) const CNAME: u16 = 5;
pub(crate) const SOA: u16 = 6;
pub(crate) const DNAME: u16 = 39;
pub(crate) const DS: u16 = 43;
pub(crate) const RRSIG: u16 = 46;
pub(crate) const NSEC: u16 = 47;
pub(crate) const DNSKEY: u16 = 48;
pub(crate) const AAAA: u16 = 28;
pub(crate) const NSEC3: u16 = 50;
pub(crate) const NSEC3PARAM: u16 = 51;
pub(crate) const CDS: u16 = 59;
pub(crate) const CDNSKEY: u16 = 60;
