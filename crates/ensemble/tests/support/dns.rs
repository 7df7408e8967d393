//! A real DNS server on 127.0.0.1 (hickory-server, in-process) serving one zone whose records
//! tests add while it runs.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::authority::{AuthorityObject, Catalog, ZoneType};
use hickory_server::store::in_memory::InMemoryAuthority;
use hickory_server::ServerFuture;

pub const ZONE: &str = "cluster.test.";

pub struct DnsServer {
    pub addr: SocketAddr,
    zone: Arc<InMemoryAuthority>,
    serial: std::sync::atomic::AtomicU32,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Serves [`ZONE`] over UDP on a free loopback port.
    pub async fn start() -> DnsServer {
        let origin = Name::from_str(ZONE).unwrap();
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            Name::from_str("ns.cluster.test.").unwrap(),
            Name::from_str("admin.cluster.test.").unwrap(),
            1,
            60,
            60,
            60,
            0,
        );
        zone.upsert_mut(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1);
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin),
            vec![zone.clone() as Arc<dyn AuthorityObject>],
        );
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = ServerFuture::new(catalog);
        server.register_socket(socket);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        DnsServer {
            addr,
            zone,
            serial: 2.into(),
            task,
        }
    }

    async fn upsert(&self, name: &str, rdata: RData) {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = Name::from_str(name).unwrap();
        assert!(
            self.zone
                .upsert(Record::from_rdata(name, 0, rdata), serial)
                .await
        );
    }

    /// Adds an A or AAAA record.
    pub async fn add_ip(&self, name: &str, ip: IpAddr) {
        let rdata = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.upsert(name, rdata).await;
    }

    /// Adds an SRV record pointing at `target:port`.
    pub async fn add_srv(&self, name: &str, target: &str, port: u16) {
        let target = Name::from_str(target).unwrap();
        self.upsert(name, RData::SRV(SRV::new(0, 0, port, target)))
            .await;
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
