use super::*;
use crate::wire::{ActionResult, ApiError, Role};

fn target() -> Target {
    Target::new("cache-any.prod.svc", "10.0.0.7:8000".parse().unwrap())
}

#[test]
fn url_names_the_certificate_and_dials_the_pod_port() {
    assert_eq!(
        target().url(path::PROMOTE),
        "https://cache-any.prod.svc:8000/v1/promote"
    );
    let v6 = Target::new("cache-any.prod.svc", "[fd00::7]:8443".parse().unwrap());
    assert_eq!(v6.url(path::STATUS), "https://cache-any.prod.svc:8443/v1/status");
}

#[test]
fn target_displays_name_and_address() {
    assert_eq!(target().to_string(), "cache-any.prod.svc at 10.0.0.7:8000");
}

#[test]
fn successful_answer_decodes_into_its_type() {
    let body = br#"{"message":"promoted","role":"primary","fenced":false}"#;
    let result: ActionResult = decode(StatusCode::OK, body).unwrap();
    assert_eq!(
        result,
        ActionResult {
            message: "promoted".into(),
            role: Role::Primary,
            fenced: false
        }
    );
}

/// The error a refused or malformed answer must become.
enum Expected {
    Api {
        status: u16,
        reason: &'static str,
    },
    Unexpected {
        status: u16,
        detail_contains: &'static str,
    },
}

#[test]
fn answers_map_to_errors_by_status_and_body() {
    let cases: [(&str, StatusCode, &[u8], Expected); 5] = [
        (
            "refusal with an ApiError body is an API error",
            StatusCode::FORBIDDEN,
            br#"{"reason":"forbidden","message":"why"}"#,
            Expected::Api {
                status: 403,
                reason: "forbidden",
            },
        ),
        (
            "conflict keeps its reason",
            StatusCode::CONFLICT,
            br#"{"reason":"notTargetPrimary","message":"why"}"#,
            Expected::Api {
                status: 409,
                reason: "notTargetPrimary",
            },
        ),
        (
            "refusal with a text body is unexpected",
            StatusCode::BAD_GATEWAY,
            b"upstream down",
            Expected::Unexpected {
                status: 502,
                detail_contains: "upstream down",
            },
        ),
        (
            "refusal with an empty body is unexpected",
            StatusCode::NOT_FOUND,
            b"",
            Expected::Unexpected {
                status: 404,
                detail_contains: "(empty)",
            },
        ),
        (
            "success with another shape is unexpected",
            StatusCode::OK,
            br#"{"hello":"world"}"#,
            Expected::Unexpected {
                status: 200,
                detail_contains: "missing field `message`",
            },
        ),
    ];
    for (case, status, body, expected) in cases {
        let got = decode::<ActionResult>(status, body);
        match (&got, expected) {
            (Err(ClientError::Api { status, error }), Expected::Api { status: s, reason }) => {
                assert_eq!((*status, error.reason.as_str()), (s, reason), "{case}");
                assert_eq!(error.message, "why", "{case}");
            }
            (
                Err(ClientError::UnexpectedBody { status, detail }),
                Expected::Unexpected {
                    status: s,
                    detail_contains,
                },
            ) => {
                assert_eq!(*status, s, "{case}");
                assert!(detail.contains(detail_contains), "{case}: {detail}");
            }
            _ => panic!("{case}: got {got:?}"),
        }
    }
}

#[test]
fn readiness_is_200_or_503_and_anything_else_is_an_error() {
    assert!(readiness(StatusCode::OK, b"ok").unwrap());
    assert!(!readiness(StatusCode::SERVICE_UNAVAILABLE, b"not ready").unwrap());
    let unauthorized = readiness(
        StatusCode::UNAUTHORIZED,
        br#"{"reason":"unauthenticated","message":"m"}"#,
    );
    assert!(
        matches!(unauthorized, Err(ClientError::Api { status: 401, .. })),
        "{unauthorized:?}"
    );
}

#[test]
fn api_error_message_carries_status_reason_and_message() {
    let error = ClientError::Api {
        status: 409,
        error: ApiError {
            reason: "notTargetPrimary".into(),
            message: "10.0.0.9 is not primary".into(),
        },
    };
    assert_eq!(
        error.to_string(),
        "instance API answered 409: 10.0.0.9 is not primary (notTargetPrimary)"
    );
}

#[test]
fn long_unexpected_bodies_are_cut() {
    let body = "x".repeat(1000);
    let ClientError::UnexpectedBody { detail, .. } =
        refusal(StatusCode::INTERNAL_SERVER_ERROR, body.as_bytes())
    else {
        panic!("expected an unexpected body");
    };
    assert_eq!(detail.len(), BODY_EXCERPT + "...".len());
}

#[test]
fn tls_errors_are_found_inside_nested_io_errors() {
    let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls.clone());
    assert_eq!(tls_cause(&io), Some(&tls));
    let nested = std::io::Error::other(io);
    assert_eq!(tls_cause(&nested), Some(&tls));
    let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(tls_cause(&plain), None);
}
