//! Where a client is: its region, from a header a trusted load balancer sets, or
//! from a table of networks. Edges and the catalog resolve regions the same way.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// Maps clients to regions.
#[derive(Clone, Debug, Default)]
pub struct RegionMap {
    header: Option<http::HeaderName>,
    networks: Vec<(IpNet, String)>,
}

/// A bad entry in the network table.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("'{0}' is not NETWORK=REGION (e.g. 10.0.0.0/8=eu)")]
    Entry(String),
    #[error("'{0}' is not a header name")]
    Header(String),
}

impl RegionMap {
    /// A map that trusts `header` (if any) and then the `networks` table, given as
    /// `CIDR=REGION` entries; the most specific network wins.
    pub fn new(header: Option<&str>, networks: &[String]) -> Result<Self, RegionError> {
        let header = header
            .filter(|h| !h.is_empty())
            .map(|h| http::HeaderName::try_from(h).map_err(|_| RegionError::Header(h.into())))
            .transpose()?;
        let mut nets = Vec::new();
        for entry in networks {
            let (net, region) = entry
                .split_once('=')
                .ok_or_else(|| RegionError::Entry(entry.clone()))?;
            let net: IpNet = net
                .trim()
                .parse()
                .map_err(|_| RegionError::Entry(entry.clone()))?;
            let region = region.trim();
            if region.is_empty() {
                return Err(RegionError::Entry(entry.clone()));
            }
            nets.push((net, region.to_string()));
        }
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        Ok(RegionMap {
            header,
            networks: nets,
        })
    }

    /// The client's region: the trusted header first, then the network table.
    pub fn region_of(&self, headers: &HeaderMap, peer: IpAddr) -> Option<String> {
        if let Some(h) = &self.header {
            if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
                let v = v.trim();
                if !v.is_empty() {
                    return Some(v.to_ascii_lowercase());
                }
            }
        }
        let peer = match peer {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.networks
            .iter()
            .find(|(n, _)| n.contains(&peer))
            .map(|(_, r)| r.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_then_most_specific_network() {
        let m = RegionMap::new(
            Some("x-region"),
            &[
                "10.0.0.0/8=eu".into(),
                "10.1.0.0/16=us".into(),
                "::1/128=ap".into(),
            ],
        )
        .expect("map");
        let mut h = HeaderMap::new();
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(m.region_of(&h, ip("10.2.3.4")).as_deref(), Some("eu"));
        assert_eq!(m.region_of(&h, ip("10.1.3.4")).as_deref(), Some("us"));
        assert_eq!(m.region_of(&h, ip("::1")).as_deref(), Some("ap"));
        assert_eq!(
            m.region_of(&h, ip("::ffff:10.1.0.1")).as_deref(),
            Some("us")
        );
        assert_eq!(m.region_of(&h, ip("192.168.1.1")), None);
        h.insert("x-region", "EU".parse().expect("value"));
        assert_eq!(m.region_of(&h, ip("10.1.3.4")).as_deref(), Some("eu"));
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(RegionMap::new(None, &["10.0.0.0/8".into()]).is_err());
        assert!(RegionMap::new(None, &["nonsense=eu".into()]).is_err());
        assert!(RegionMap::new(None, &["10.0.0.0/8=".into()]).is_err());
        assert!(RegionMap::new(Some("bad header"), &[]).is_err());
    }
}
