//! Where a call's key is read from.

use http::HeaderValue;

use http::HeaderMap;

use super::policy::presented_key;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn presented_keys() {
    assert_eq!(presented_key(&headers(&[("authorization", "Bearer abc")]), false).as_deref(), Some("abc"));
    assert_eq!(presented_key(&headers(&[("authorization", "bearer  abc ")]), false).as_deref(), Some("abc"));
    assert_eq!(presented_key(&headers(&[("authorization", "Basic abc")]), false), None);
    assert_eq!(presented_key(&headers(&[("x-api-key", "k")]), false).as_deref(), Some("k"));
    assert_eq!(
        presented_key(&headers(&[("authorization", "Bearer a"), ("x-api-key", "b")]), false).as_deref(),
        Some("a"),
        "the bearer token comes first"
    );
    assert_eq!(presented_key(&headers(&[("x-api-key", "")]), false), None);
    let cookie = headers(&[("cookie", "theme=dark; portway-api-key=c; other=1")]);
    assert_eq!(presented_key(&cookie, true).as_deref(), Some("c"));
    assert_eq!(presented_key(&cookie, false), None, "cookies count on WebSocket upgrades only");
}
