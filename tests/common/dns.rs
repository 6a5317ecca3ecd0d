//! A small DNS server for tests: answers SRV queries from a table that a test may change while
//! it runs, with a short TTL so that the service asks again.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::SRV;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One SRV record: priority, weight, port, target host.
pub type Srv = (u16, u16, u16, &'static str);

/// The TTL of every answer, in seconds.
pub const TTL: u32 = 1;

pub struct DnsServer {
    pub addr: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<Srv>>>>,
    queries: Arc<Mutex<Vec<String>>>,
}

impl DnsServer {
    /// Starts on a free loopback UDP port with no records.
    pub fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<Srv>>>> = Arc::default();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let (table, log) = (records.clone(), queries.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            // Ends when the test process does.
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let answer = answer(&query, &table.lock().unwrap(), &log);
                let _ = socket.send_to(&answer, from);
            }
        });
        DnsServer {
            addr,
            records,
            queries,
        }
    }

    /// Sets the SRV records of `name` (a fully qualified name, ending in `.`).
    pub fn set(&self, name: &str, records: &[Srv]) {
        self.records
            .lock()
            .unwrap()
            .insert(name.to_ascii_lowercase(), records.to_vec());
    }

    /// The names asked for so far, in order.
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().unwrap().clone()
    }
}

fn answer(query: &Message, table: &HashMap<String, Vec<Srv>>, log: &Mutex<Vec<String>>) -> Vec<u8> {
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let mut found = false;
    for q in query.queries() {
        reply.add_query(q.clone());
        let name = q.name().to_ascii().to_ascii_lowercase();
        log.lock().unwrap().push(name.clone());
        if q.query_type() != RecordType::SRV {
            continue;
        }
        for &(priority, weight, port, target) in table.get(&name).into_iter().flatten() {
            found = true;
            let target = Name::from_ascii(target).unwrap();
            let srv = SRV::new(priority, weight, port, target);
            reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::SRV(srv)));
        }
    }
    if !found {
        reply.set_response_code(ResponseCode::NXDomain);
    }
    reply.to_vec().unwrap()
}
