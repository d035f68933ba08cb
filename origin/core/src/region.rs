//! Where a client is: its region, from a header a trusted proxy sets, or from its
//! address through a table of networks and a MaxMind-format country database.
//! Edges and the catalog resolve regions the same way.
//!
//! A header is only believed from a peer inside `trusted_proxies` (none by default):
//! anyone else could write it, and licensing by region would then hold only as long
//! as every load balancer stripped it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use http::HeaderMap;
use ipnet::IpNet;

/// Maps clients to regions.
#[derive(Clone, Debug, Default)]
pub struct RegionMap {
    header: Option<http::HeaderName>,
    trusted: Vec<IpNet>,
    networks: Vec<(IpNet, String)>,
    geoip: Option<Arc<GeoIp>>,
}

/// A country database and the region of each country it may name.
struct GeoIp {
    reader: maxminddb::Reader<Vec<u8>>,
    countries: Vec<(String, String)>,
}

impl std::fmt::Debug for GeoIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoIp")
            .field("database_type", &self.reader.metadata().database_type)
            .field("countries", &self.countries)
            .finish()
    }
}

/// A bad entry in the region options.
#[derive(Debug, thiserror::Error)]
pub enum RegionError {
    #[error("'{0}' is not NETWORK=REGION (e.g. 10.0.0.0/8=eu)")]
    Entry(String),
    #[error("'{0}' is not a header name")]
    Header(String),
    #[error("'{0}' is not a network (e.g. 10.0.0.0/8 or 192.0.2.7)")]
    Proxy(String),
    #[error("'{0}' is not COUNTRY=REGION (e.g. DE=eu)")]
    Country(String),
    #[error("{0}")]
    GeoIp(String),
}

/// Parses a network, or a single address as a /32 (/128).
fn network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// An IPv4 address that arrived mapped into IPv6 is looked up as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Splits `KEY=VALUE` with both sides non-empty.
fn pair(entry: &str) -> Option<(&str, &str)> {
    let (k, v) = entry.split_once('=')?;
    let (k, v) = (k.trim(), v.trim());
    (!k.is_empty() && !v.is_empty()).then_some((k, v))
}

impl RegionMap {
    /// A map with the region `header` (believed only from
    /// [`trusted proxies`](Self::trusting)) and the `networks` table, given as
    /// `CIDR=REGION` entries; the most specific network wins.
    pub fn new(header: Option<&str>, networks: &[String]) -> Result<Self, RegionError> {
        let header = header
            .filter(|h| !h.is_empty())
            .map(|h| http::HeaderName::try_from(h).map_err(|_| RegionError::Header(h.into())))
            .transpose()?;
        let mut nets = Vec::new();
        for entry in networks {
            let (net, region) = pair(entry).ok_or_else(|| RegionError::Entry(entry.clone()))?;
            let net: IpNet = net.parse().map_err(|_| RegionError::Entry(entry.clone()))?;
            nets.push((net, region.to_ascii_lowercase()));
        }
        nets.sort_by_key(|n| std::cmp::Reverse(n.0.prefix_len()));
        Ok(RegionMap {
            header,
            trusted: Vec::new(),
            networks: nets,
            geoip: None,
        })
    }

    /// The peers (networks or single addresses) whose headers are believed: the
    /// region header here, and the client-address header of the catalog.
    pub fn trusting(mut self, proxies: &[String]) -> Result<Self, RegionError> {
        self.trusted = proxies
            .iter()
            .map(|p| network(p).ok_or_else(|| RegionError::Proxy(p.clone())))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }

    /// Adds a MaxMind-format country database (GeoLite2-Country, GeoIP2-Country or
    /// -City, or any `.mmdb` with `country.iso_code`) consulted after the network
    /// table, and the region of each country as `CC=REGION` entries (`*=REGION` for
    /// every country not listed). Without `database` the entries must be empty.
    pub fn with_geoip(
        mut self,
        database: Option<&Path>,
        countries: &[String],
    ) -> Result<Self, RegionError> {
        let mut map = Vec::new();
        for entry in countries {
            let (cc, region) = pair(entry).ok_or_else(|| RegionError::Country(entry.clone()))?;
            if cc != "*" && !(cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic())) {
                return Err(RegionError::Country(entry.clone()));
            }
            map.push((cc.to_ascii_uppercase(), region.to_ascii_lowercase()));
        }
        let Some(path) = database else {
            if map.is_empty() {
                return Ok(self);
            }
            return Err(RegionError::GeoIp(
                "country regions are set but no geoip database".into(),
            ));
        };
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| RegionError::GeoIp(format!("{}: {e}", path.display())))?;
        self.geoip = Some(Arc::new(GeoIp {
            reader,
            countries: map,
        }));
        Ok(self)
    }

    /// Whether `peer` is one of the trusted proxies.
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.trusted.iter().any(|n| n.contains(&peer))
    }

    /// The region of a client connected directly from `peer`.
    pub fn region_of(&self, headers: &HeaderMap, peer: IpAddr) -> Option<String> {
        self.resolve(headers, peer, peer)
    }

    /// The region of `client`, whose request came through `peer` (the same address
    /// unless a trusted proxy named the client): the header if `peer` is trusted,
    /// else `client` through the network table, then the country database.
    pub fn resolve(&self, headers: &HeaderMap, peer: IpAddr, client: IpAddr) -> Option<String> {
        if let Some(h) = self.header.as_ref().filter(|_| self.is_trusted(peer)) {
            if let Some(v) = headers.get(h).and_then(|v| v.to_str().ok()) {
                let v = v.trim();
                if !v.is_empty() {
                    return Some(v.to_ascii_lowercase());
                }
            }
        }
        let client = canonical(client);
        if let Some((_, r)) = self.networks.iter().find(|(n, _)| n.contains(&client)) {
            return Some(r.clone());
        }
        let geoip = self.geoip.as_ref()?;
        let country = country_of(&geoip.reader, client)?;
        geoip
            .countries
            .iter()
            .find(|(cc, _)| cc.eq_ignore_ascii_case(&country))
            .or_else(|| geoip.countries.iter().find(|(cc, _)| cc == "*"))
            .map(|(_, r)| r.clone())
    }
}

/// The ISO code of the country a database places `ip` in (or, failing that, where
/// its network is registered).
fn country_of(reader: &maxminddb::Reader<Vec<u8>>, ip: IpAddr) -> Option<String> {
    let found = reader.lookup(ip).ok()?;
    let record: maxminddb::geoip2::Country<'_> = found.decode().ok()??;
    record
        .country
        .iso_code
        .or(record.registered_country.iso_code)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn most_specific_network_wins() {
        let m = RegionMap::new(
            Some("x-region"),
            &[
                "10.0.0.0/8=eu".into(),
                "10.1.0.0/16=us".into(),
                "::1/128=ap".into(),
            ],
        )
        .expect("map");
        let h = HeaderMap::new();
        assert_eq!(m.region_of(&h, ip("10.2.3.4")).as_deref(), Some("eu"));
        assert_eq!(m.region_of(&h, ip("10.1.3.4")).as_deref(), Some("us"));
        assert_eq!(m.region_of(&h, ip("::1")).as_deref(), Some("ap"));
        assert_eq!(
            m.region_of(&h, ip("::ffff:10.1.0.1")).as_deref(),
            Some("us")
        );
        assert_eq!(m.region_of(&h, ip("192.168.1.1")), None);
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let m = RegionMap::new(Some("x-region"), &["10.0.0.0/8=eu".into()])
            .and_then(|m| m.trusting(&["192.0.2.0/24".into(), "::1".into()]))
            .expect("map");
        let mut h = HeaderMap::new();
        h.insert("x-region", "US".parse().expect("value"));
        // A client that writes the header itself changes nothing.
        assert_eq!(m.region_of(&h, ip("10.1.3.4")).as_deref(), Some("eu"));
        assert_eq!(m.region_of(&h, ip("203.0.113.9")), None);
        // A trusted proxy's header decides.
        assert_eq!(m.region_of(&h, ip("192.0.2.7")).as_deref(), Some("us"));
        assert_eq!(m.region_of(&h, ip("::1")).as_deref(), Some("us"));
        assert_eq!(
            m.region_of(&h, ip("::ffff:192.0.2.7")).as_deref(),
            Some("us")
        );
        // Behind a trusted proxy without the header, the client's address decides.
        assert_eq!(
            m.resolve(&HeaderMap::new(), ip("192.0.2.7"), ip("10.9.9.9"))
                .as_deref(),
            Some("eu")
        );
        // Nobody is trusted by default.
        let open = RegionMap::new(Some("x-region"), &[]).expect("map");
        assert_eq!(open.region_of(&h, ip("127.0.0.1")), None);
        assert!(!open.is_trusted(ip("127.0.0.1")));
    }

    /// A tiny GeoLite2-style country database: 81.0.0.0/8 in DE, 3.0.0.0/8 in US,
    /// 41.0.0.0/8 registered in ZA (no `country`).
    pub(crate) fn tiny_mmdb(path: &Path) {
        use maxminddb_writer::paths::IpAddrWithMask;
        #[derive(serde::Serialize)]
        struct Country {
            iso_code: &'static str,
        }
        #[derive(serde::Serialize)]
        struct Located {
            country: Country,
        }
        #[derive(serde::Serialize)]
        struct Registered {
            registered_country: Country,
        }
        let mut db = maxminddb_writer::Database::default();
        db.metadata.database_type = "GeoLite2-Country".into();
        db.metadata.binary_format_major_version = 2;
        let de = db
            .insert_value(Located {
                country: Country { iso_code: "DE" },
            })
            .expect("value");
        let us = db
            .insert_value(Located {
                country: Country { iso_code: "US" },
            })
            .expect("value");
        let za = db
            .insert_value(Registered {
                registered_country: Country { iso_code: "ZA" },
            })
            .expect("value");
        for (net, data) in [("81.0.0.0/8", de), ("3.0.0.0/8", us), ("41.0.0.0/8", za)] {
            db.insert_node(net.parse::<IpAddrWithMask>().expect("net"), data);
        }
        let file = std::fs::File::create(path).expect("create");
        db.write_to(std::io::BufWriter::new(file)).expect("write");
    }

    #[test]
    fn addresses_resolve_through_a_country_database() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("country.mmdb");
        tiny_mmdb(&path);
        let m = RegionMap::new(None, &["81.1.0.0/16=lab".into()])
            .and_then(|m| m.with_geoip(Some(&path), &["de=eu".into(), "US=us".into()]))
            .expect("map");
        let h = HeaderMap::new();
        assert_eq!(m.region_of(&h, ip("81.2.3.4")).as_deref(), Some("eu"));
        assert_eq!(m.region_of(&h, ip("3.3.3.3")).as_deref(), Some("us"));
        // The network table is more specific than a country and comes first.
        assert_eq!(m.region_of(&h, ip("81.1.2.3")).as_deref(), Some("lab"));
        // A country without a region, or no country at all: unknown.
        assert_eq!(m.region_of(&h, ip("41.1.1.1")), None);
        assert_eq!(m.region_of(&h, ip("198.51.100.1")), None);
        assert_eq!(m.region_of(&h, ip("2001:db8::1")), None);
        // `*` catches every country not listed; the registered country counts.
        let m = RegionMap::new(None, &[])
            .and_then(|m| m.with_geoip(Some(&path), &["DE=eu".into(), "*=row".into()]))
            .expect("map");
        assert_eq!(m.region_of(&h, ip("41.1.1.1")).as_deref(), Some("row"));
        assert_eq!(m.region_of(&h, ip("81.2.3.4")).as_deref(), Some("eu"));
        assert_eq!(m.region_of(&h, ip("198.51.100.1")), None);
    }

    #[test]
    fn bad_entries_are_errors() {
        assert!(RegionMap::new(None, &["10.0.0.0/8".into()]).is_err());
        assert!(RegionMap::new(None, &["nonsense=eu".into()]).is_err());
        assert!(RegionMap::new(None, &["10.0.0.0/8=".into()]).is_err());
        assert!(RegionMap::new(Some("bad header"), &[]).is_err());
        let m = || RegionMap::new(None, &[]).expect("map");
        assert!(m().trusting(&["10.0.0.0/33".into()]).is_err());
        assert!(m().trusting(&["proxy".into()]).is_err());
        assert!(m().with_geoip(None, &["DE=eu".into()]).is_err());
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("country.mmdb");
        tiny_mmdb(&path);
        assert!(m().with_geoip(Some(&path), &["GER=eu".into()]).is_err());
        assert!(m().with_geoip(Some(&path), &["DE".into()]).is_err());
        let missing = dir.path().join("missing.mmdb");
        assert!(m().with_geoip(Some(&missing), &[]).is_err());
        std::fs::write(&missing, b"not a database").expect("write");
        assert!(m().with_geoip(Some(&missing), &[]).is_err());
    }
}
