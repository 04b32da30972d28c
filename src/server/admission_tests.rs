use super::*;

fn admission(max: usize, per_address: usize, reclaim_after: Option<Duration>) -> Arc<Admission> {
    let config = HttpConfig {
        max_connections: max,
        max_connections_per_address: per_address,
        reclaim_after,
        ..Default::default()
    };
    Admission::new(&config, Arc::default())
}

fn peer(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn slot(a: Admitted) -> Slot {
    match a {
        Admitted::Now(slot) => slot,
        _ => panic!("expected a slot now"),
    }
}

#[test]
fn address_keys() {
    let v4 = AddressKey::of("192.0.2.1".parse().unwrap());
    assert_eq!(v4, AddressKey::of("::ffff:192.0.2.1".parse().unwrap()));
    let a = AddressKey::of("2001:db8:1:2::1".parse().unwrap());
    assert_eq!(a, AddressKey::of("2001:db8:1:2:ffff::9".parse().unwrap()), "one /64");
    assert_ne!(a, AddressKey::of("2001:db8:1:3::1".parse().unwrap()));
}

#[tokio::test]
async fn per_address_limit_counts_until_drop() {
    let adm = admission(10, 2, None);
    let a = slot(adm.admit(peer("10.0.0.1:1")));
    let _b = slot(adm.admit(peer("10.0.0.1:2")));
    assert!(matches!(adm.admit(peer("10.0.0.1:3")), Admitted::Refused(Refused::PerAddress)));
    let _other = slot(adm.admit(peer("10.0.0.2:1")));
    drop(a);
    let _c = slot(adm.admit(peer("10.0.0.1:4")));
    assert_eq!(adm.open(), 3);
}

#[tokio::test]
async fn full_without_reserve_refuses() {
    let adm = admission(1, 10, None);
    let _a = slot(adm.admit(peer("10.0.0.1:1")));
    assert!(matches!(adm.admit(peer("10.0.0.2:1")), Admitted::Refused(Refused::Full)));
}

#[tokio::test]
async fn reclaims_the_stalest_idle_connection_first() {
    // Progress stamps set by hand: 0 is the stalest possible, a stamp ahead of the clock
    // is as fresh as can be.
    let (stalest, fresh) = (0, now_ms() + 60_000);
    let adm = admission(3, 10, Some(Duration::ZERO));
    let busy = slot(adm.admit(peer("10.0.0.1:1")));
    busy.state().request_started();
    busy.state().last_progress.store(stalest, Ordering::Relaxed);
    let idle_old = slot(adm.admit(peer("10.0.0.2:1")));
    idle_old.state().last_progress.store(stalest + 1, Ordering::Relaxed);
    let idle_new = slot(adm.admit(peer("10.0.0.3:1")));
    idle_new.state().last_progress.store(fresh, Ordering::Relaxed);
    let Admitted::Reclaim(wait) = adm.admit(peer("10.0.0.4:1")) else { panic!("expected a reclaim") };
    assert!(idle_old.state().is_evicting(), "the stalest idle connection goes first");
    assert!(!busy.state().is_evicting() && !idle_new.state().is_evicting());
    drop(idle_old);
    let _new = wait.wait().await.expect("the victim's permit");
    assert_eq!(adm.open(), 3);
}

#[tokio::test]
async fn fresh_connections_are_not_reclaimed() {
    let adm = admission(1, 10, Some(Duration::from_secs(60)));
    let a = slot(adm.admit(peer("10.0.0.1:1")));
    assert!(matches!(adm.admit(peer("10.0.0.2:1")), Admitted::Refused(Refused::Full)));
    assert!(!a.state().is_evicting());
}

#[tokio::test]
async fn evicting_an_upgraded_socket_aborts_it() {
    let adm = admission(1, 10, Some(Duration::ZERO));
    let a = slot(adm.admit(peer("10.0.0.1:1")));
    a.state().mark_upgraded();
    assert!(matches!(adm.admit(peer("10.0.0.2:1")), Admitted::Reclaim(_)));
    assert!(a.state().is_aborted());
}
