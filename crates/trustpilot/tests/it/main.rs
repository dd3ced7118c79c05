//! The client against the emulator: auth, token reuse, error classes.

use std::net::SocketAddr;

use retl_trustpilot::{
    Client, ClientConfig, Credentials, EmailInvitation, Endpoints, ErrorClass, Grant, Secret,
    ServiceReviewInvitation,
};
use retl_trustpilot_emulator::{Emulator, EmulatorConfig};

async fn emulator() -> Emulator {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Emulator::start(EmulatorConfig::default(), addr)
        .await
        .unwrap()
}

fn client(emulator: &Emulator, grant: Grant) -> Client {
    let defaults = EmulatorConfig::default();
    Client::new(ClientConfig::new(
        Endpoints {
            auth: emulator.url(),
            invitations: emulator.url(),
        },
        Credentials {
            api_key: Secret::new(defaults.api_key),
            api_secret: Secret::new(defaults.api_secret),
            grant,
        },
    ))
    .unwrap()
}

fn client_credentials(user: &str) -> Grant {
    Grant::ClientCredentials {
        business_user_id: Some(user.to_owned()),
    }
}

fn invitation(reference: &str, email: &str) -> EmailInvitation {
    EmailInvitation {
        consumer_email: email.to_owned(),
        consumer_name: "Ann".to_owned(),
        reference_number: reference.to_owned(),
        kind: "email",
        service_review_invitation: Some(ServiceReviewInvitation::default()),
        ..EmailInvitation::default()
    }
}

#[tokio::test]
async fn one_token_serves_many_invitations() {
    let emulator = emulator().await;
    let client = client(&emulator, client_credentials("user-emulator"));
    for i in 0..5 {
        let accepted = client
            .create_email_invitation(
                "bu-emulator",
                &invitation(&format!("R{i}"), "ann@shop.example"),
            )
            .await
            .unwrap();
        assert_eq!(accepted.status, 202);
    }
    let stats = emulator.stats();
    assert_eq!(stats.tokens_issued, 1);
    assert_eq!(stats.accepted, 5);
    let stored = emulator.invitations();
    assert_eq!(stored[0].reference(), Some("R0"));
    assert_eq!(stored[0].business_user_id.as_deref(), Some("user-emulator"));
}

#[tokio::test]
async fn concurrent_first_calls_mint_a_single_token() {
    let emulator = emulator().await;
    let client = std::sync::Arc::new(client(&emulator, client_credentials("user-emulator")));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let client = client.clone();
        tasks.spawn(async move {
            client
                .create_email_invitation(
                    "bu-emulator",
                    &invitation(&format!("C{i}"), "c@shop.example"),
                )
                .await
                .map(|_| ())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
    assert_eq!(emulator.stats().token_requests, 1);
}

#[tokio::test]
async fn the_password_grant_works() {
    let emulator = emulator().await;
    let defaults = EmulatorConfig::default();
    let client = client(
        &emulator,
        Grant::Password {
            username: defaults.username,
            password: Secret::new(defaults.password),
        },
    );
    client
        .create_email_invitation("bu-emulator", &invitation("P1", "p@shop.example"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_business_user_is_fatal_after_one_fresh_token() {
    let emulator = emulator().await;
    let client = client(&emulator, client_credentials("bu-emulator"));
    let err = client
        .create_email_invitation("bu-emulator", &invitation("R1", "ann@shop.example"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(err.api().unwrap().status, 403);
    assert_eq!(err.api().unwrap().error_code.as_deref(), Some("1014"));
    let stats = emulator.stats();
    assert_eq!(stats.tokens_issued, 2, "one retry with a fresh token");
    assert_eq!(stats.invitation_requests, 2);
    assert_eq!(stats.accepted, 0);
}

#[tokio::test]
async fn a_bad_email_is_rejected_with_trustpilots_details() {
    let emulator = emulator().await;
    let client = client(&emulator, client_credentials("user-emulator"));
    let err = client
        .create_email_invitation("bu-emulator", &invitation("R1", "not-an-email"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Rejected);
    let api = err.api().unwrap();
    assert_eq!(api.status, 400);
    assert!(api.details.as_deref().unwrap().contains("Consumer Email"));
    assert!(api.correlation_id.is_some());
}

#[tokio::test]
async fn an_unknown_business_unit_is_fatal() {
    let emulator = emulator().await;
    let client = client(&emulator, client_credentials("user-emulator"));
    let err = client
        .create_email_invitation("no-such-bu", &invitation("R1", "a@shop.example"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal);
    assert_eq!(err.api().unwrap().status, 404);
}

#[tokio::test]
async fn a_wrong_secret_is_an_auth_error_that_never_prints_the_secret() {
    let emulator = emulator().await;
    let client = Client::new(ClientConfig::new(
        Endpoints {
            auth: emulator.url(),
            invitations: emulator.url(),
        },
        Credentials {
            api_key: Secret::new("emulator-key"),
            api_secret: Secret::new("wrong-secret-value"),
            grant: client_credentials("user-emulator"),
        },
    ))
    .unwrap();
    let err = client
        .create_email_invitation("bu-emulator", &invitation("R1", "a@shop.example"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Fatal);
    let shown = format!("{err} {err:?} {client:?}");
    assert!(shown.contains("invalid_client"));
    assert!(!shown.contains("wrong-secret-value"));
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let emulator = emulator().await;
    let url = emulator.url();
    emulator.stop().await.unwrap();
    let client = Client::new(ClientConfig::new(
        Endpoints {
            auth: url.clone(),
            invitations: url,
        },
        Credentials {
            api_key: Secret::new("k"),
            api_secret: Secret::new("s"),
            grant: client_credentials("u"),
        },
    ))
    .unwrap();
    let err = client
        .create_email_invitation("bu-emulator", &invitation("R1", "a@shop.example"))
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Transient);
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_never_a_success() {
    use retl_trustpilot_emulator::Fault;
    let emulator = emulator().await;
    let client = client(&emulator, client_credentials("user-emulator"));
    emulator.script_faults([Some(Fault::Redirect)]);
    let err = client
        .create_email_invitation("bu-emulator", &invitation("R-1", "a@shop.example"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            retl_trustpilot::Error::Redirect {
                status: 302,
                same_host: true,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.class(),
        ErrorClass::Transient,
        "a failure, tried again later"
    );
    assert!(err.to_string().contains("/login"), "{err}");
    assert!(emulator.invitations().is_empty());
}

#[tokio::test]
async fn a_link_answered_with_unreadable_success_is_uncertain() {
    use retl_trustpilot_emulator::Fault;
    let emulator = emulator().await;
    let client = client(&emulator, client_credentials("user-emulator"));
    emulator.script_faults([Some(Fault::LinkNotJson)]);
    let link =
        retl_trustpilot::InvitationLink::for_invitation(&invitation("R-2", "b@shop.example"));
    let err = client
        .create_invitation_link("bu-emulator", &link)
        .await
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Uncertain, "{err}");
    assert!(
        err.to_string().contains("<html>"),
        "the raw body is in the reason: {err}"
    );
    assert_eq!(emulator.invitations().len(), 1, "the link was created");
}

#[tokio::test]
async fn a_token_that_expires_at_once_is_kept_for_the_floor_not_minted_per_request() {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let emulator = Emulator::start(
        EmulatorConfig {
            advertised_lifetime: Some(std::time::Duration::ZERO),
            ..EmulatorConfig::default()
        },
        addr,
    )
    .await
    .unwrap();
    let client = client(&emulator, client_credentials("user-emulator"));
    for i in 0..20 {
        client
            .create_email_invitation(
                "bu-emulator",
                &invitation(&format!("F{i}"), "ann@shop.example"),
            )
            .await
            .unwrap();
    }
    assert_eq!(emulator.stats().accepted, 20);
    assert_eq!(
        emulator.stats().tokens_issued,
        1,
        "expires_in: 0 is taken as 60 s"
    );
}
