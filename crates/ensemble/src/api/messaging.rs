//! Named messaging on a [`Node`]: handlers registered under a name receive messages sent to
//! that name from other nodes, fire-and-forget or acknowledged.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;

use crate::command::{Command, DriverMsg, Envelope, MessagingCommand, Outgoing, MAILBOX_CAPACITY};
use crate::error::Error;
use crate::limits;
use crate::node::Node;
use crate::DEFAULT_CHANNEL;

/// The receiving end of a name registered with [`Node::register`]: a stream of
/// [`Envelope`]s. Dropping it unregisters the name.
pub struct Mailbox {
    name: String,
    rx: mpsc::Receiver<Envelope>,
    driver: mpsc::Sender<DriverMsg>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox").field("name", &self.name).finish()
    }
}

impl Mailbox {
    /// The registered name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next message; None once the node has stopped.
    pub async fn recv(&mut self) -> Option<Envelope> {
        self.rx.recv().await
    }
}

impl Stream for Mailbox {
    type Item = Envelope;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Envelope>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        let _ = self.driver.try_send(DriverMsg::Command(Command::Messaging(
            MessagingCommand::UnregisterName { name },
        )));
    }
}

impl Node {
    /// Registers a handler under `name` (like a registered process): messages other nodes send
    /// to this node under that name arrive in the returned [`Mailbox`]. A name is registered
    /// once per node.
    pub async fn register(&self, name: &str) -> Result<Mailbox, Error> {
        if name.is_empty() || name.len() > 128 {
            return Err(Error::Config(format!(
                "handler name {name:?} must be 1 to 128 bytes"
            )));
        }
        reserved(name)?;
        self.register_any(name).await
    }

    /// [`Node::register`] for Ensemble's own names (`ensemble.*`), which users may not take.
    pub(crate) async fn register_any(&self, name: &str) -> Result<Mailbox, Error> {
        let (tx, rx) = mpsc::channel(MAILBOX_CAPACITY);
        let n = name.to_owned();
        self.call(|reply| {
            Command::Messaging(MessagingCommand::RegisterName { name: n, tx, reply })
        })
        .await??;
        Ok(Mailbox {
            name: name.to_owned(),
            rx,
            driver: self.driver_sender(),
        })
    }

    /// Sends `payload` to the handler registered as `name` on member `to`, fire-and-forget.
    /// Fails at once if `to` is not a live member. To a member that is live but not connected
    /// yet (it just joined), the message waits up to 5 s for the connection, and a failure is
    /// logged. A message that cannot fit in one frame ([`crate::Config::max_frame_size`], 1 MiB
    /// by default, less the names around the payload) fails at once with [`Error::TooLarge`].
    pub async fn cast_message(
        &self,
        to: &str,
        name: &str,
        payload: impl Into<Bytes>,
    ) -> Result<(), Error> {
        self.cast_message_on(DEFAULT_CHANNEL, to, name, payload)
            .await
    }

    /// [`Node::cast_message`] on a channel declared in [`crate::Config::channels`]: its own
    /// send queue per connection, so a backlog on one channel never delays another.
    pub async fn cast_message_on(
        &self,
        channel: &str,
        to: &str,
        name: &str,
        payload: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let channel = self.channel(channel)?;
        let payload = payload.into();
        self.fits(to, name, &payload, channel.as_deref())?;
        // The common case, a live member that is not this node, needs no answer from the
        // driver: checked here against the published member list, then queued.
        if to != self.name() && self.is_up(to) {
            let cmd = Command::Messaging(MessagingCommand::Cast(Outgoing {
                to: to.to_owned(),
                name: name.to_owned(),
                payload,
                channel,
            }));
            return self
                .driver_sender()
                .send(DriverMsg::Command(cmd))
                .await
                .map_err(|_| Error::Stopped);
        }
        self.send_direct(to, name, payload, None, channel).await
    }

    /// Sends `payload` to the handler registered as `name` on member `to` and waits for its
    /// acknowledgement: the message is retransmitted (after a reconnect, or every 500 ms)
    /// until acked or `timeout` passes. Fails with [`Error::UnknownName`] if no handler has
    /// that name there, [`Error::Timeout`] if no ack came in time, [`Error::UnknownNode`] if
    /// `to` is not a live member, [`Error::TooLarge`] (at once) if it cannot fit in one frame.
    pub async fn forward_message(
        &self,
        to: &str,
        name: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(), Error> {
        self.forward_message_on(DEFAULT_CHANNEL, to, name, payload, timeout)
            .await
    }

    /// [`Node::forward_message`] on a channel declared in [`crate::Config::channels`].
    pub async fn forward_message_on(
        &self,
        channel: &str,
        to: &str,
        name: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<(), Error> {
        let channel = self.channel(channel)?;
        let payload = payload.into();
        self.fits(to, name, &payload, channel.as_deref())?;
        self.send_direct(to, name, payload, Some(timeout), channel)
            .await
    }

    /// [`Node::cast_message`] to one of Ensemble's own names (`ensemble.*`).
    pub(crate) async fn cast_reserved(
        &self,
        to: &str,
        name: &str,
        payload: Bytes,
    ) -> Result<(), Error> {
        let size = limits::named_message_len(self.name(), to, name, &payload, None);
        limits::fits("a named message", size, self.inner.max_frame)?;
        self.send_direct(to, name, payload, None, None).await
    }

    /// Refuses a message that would not fit in one frame in any form it may travel (relayed
    /// included): [`Error::TooLarge`], before anything is queued. (A peer closes a connection
    /// on which a frame over its limit arrives.)
    fn fits(
        &self,
        to: &str,
        name: &str,
        payload: &Bytes,
        channel: Option<&str>,
    ) -> Result<(), Error> {
        reserved(name)?;
        let size = limits::named_message_len(self.name(), to, name, payload, channel);
        limits::fits("a named message", size, self.inner.max_frame)
    }

    /// The named messaging channels declared besides the default one.
    pub fn channels(&self) -> &[String] {
        &self.inner.channels
    }

    /// The wire form of a channel name (None: the default channel), if declared here.
    fn channel(&self, channel: &str) -> Result<Option<String>, Error> {
        if channel == DEFAULT_CHANNEL {
            Ok(None)
        } else if self.channels().iter().any(|c| c == channel) {
            Ok(Some(channel.to_owned()))
        } else {
            Err(Error::UnknownChannel(channel.to_owned()))
        }
    }

    async fn send_direct(
        &self,
        to: &str,
        name: &str,
        payload: Bytes,
        ack: Option<Duration>,
        channel: Option<String>,
    ) -> Result<(), Error> {
        let out = Outgoing {
            to: to.to_owned(),
            name: name.to_owned(),
            payload,
            channel,
        };
        let rx = self
            .call(|reply| Command::Messaging(MessagingCommand::SendDirect { out, ack, reply }))
            .await?;
        rx.await.map_err(|_| Error::Stopped)?
    }
}

/// Refuses a handler name of Ensemble's own (key operations travel as named messages to
/// `ensemble.keys`: nobody else may send or receive under such a name).
fn reserved(name: &str) -> Result<(), Error> {
    if name.starts_with(limits::RESERVED_TABLE_PREFIX) {
        return Err(Error::ReservedHandler(name.to_owned()));
    }
    Ok(())
}
