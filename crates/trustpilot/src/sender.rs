//! Trustpilot as the run's destination ([`retl_destination::Sender`]).

use std::time::Duration;

use retl_destination::Delivered;

use crate::{Client, EmailInvitation, Error, InvitationLink, Ticket};

/// One row's request to Trustpilot.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// An email invitation Trustpilot sends.
    Email(Box<EmailInvitation>),
    /// An invitation link the business sends itself.
    Link(InvitationLink),
}

impl Request {
    /// The request body, as JSON (for a preview).
    pub fn body(&self) -> serde_json::Value {
        match self {
            Request::Email(body) => serde_json::to_value(body),
            Request::Link(link) => serde_json::to_value(link),
        }
        .unwrap_or_default()
    }
}

/// A client and the business unit its requests go to.
#[derive(Debug)]
pub struct TrustpilotSender {
    /// The client (token, pacing).
    pub client: Client,
    /// The business unit of every request.
    pub business_unit: String,
}

impl retl_destination::Sender for TrustpilotSender {
    type Request = Request;
    type Ticket = Ticket;
    type Error = Error;

    async fn ready(&self) -> Result<Ticket, Error> {
        self.client.ready().await
    }

    async fn send(&self, ticket: Ticket, request: &Request) -> Result<Delivered, Error> {
        match request {
            Request::Email(body) => {
                let accepted = self
                    .client
                    .send_email_invitation(ticket, &self.business_unit, body)
                    .await?;
                Ok(Delivered {
                    status: Some(accepted.status),
                    external_id: accepted.id,
                    url: None,
                    note: accepted.note,
                })
            }
            Request::Link(link) => {
                let created = self
                    .client
                    .send_invitation_link(ticket, &self.business_unit, link)
                    .await?;
                Ok(Delivered {
                    status: None,
                    external_id: Some(created.id),
                    url: Some(created.url),
                    note: None,
                })
            }
        }
    }

    fn pause(&self, wait: Duration) {
        self.client.pause(wait);
    }
}
