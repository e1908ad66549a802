//! The cluster's shared state in Redis, and nothing else: node records that expire unless their
//! heartbeat renews them, the lease that names each event's origin, and the control messages
//! published per event. Every call is bounded in time: a Redis outage makes calls fail fast
//! (media never waits on Redis), and the connection comes back by itself.
//!
//! Keys (`{p}` is the key prefix, `tolk` by default):
//! - `{p}:node:{id}`: the node's [`NodeInfo`] as JSON, expiring after the node TTL;
//! - `{p}:origin:{event}`: the id of the event's origin node, expiring after the lease TTL;
//! - channel `{p}:event:{event}`: [`Control`] messages for the nodes serving the event.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::cluster::ClusterError;
use crate::cluster::control::Control;
use crate::cluster::node::NodeInfo;
use crate::ids::{EventId, NodeId};

/// How long a Redis call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_millis(800);

/// Renews a lease only for the node that holds it.
const RENEW: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Deletes a lease only for the node that holds it.
const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1]) else return 0 end";

/// Nodes, leases and control messages in one Redis.
#[derive(Clone)]
pub struct Registry {
    client: redis::Client,
    redis: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

fn failed(what: &str) -> impl FnOnce(redis::RedisError) -> ClusterError + '_ {
    move |e| ClusterError::Redis(format!("{what}: {e}"))
}

async fn bounded<T>(
    what: &str,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(failed(what)),
        Err(_) => {
            Err(ClusterError::Redis(format!("{what}: no answer within {} ms", CALL_TIMEOUT.as_millis())))
        }
    }
}

impl Registry {
    /// A registry on the Redis at `url` (`redis://host:6379/0`); connects on first use, so a node
    /// starts while Redis is away.
    pub fn open(url: &str, prefix: &str) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url)
            .map_err(|e| ClusterError::Config(format!("TOLK_REDIS_URL '{url}' is not a Redis URL: {e}")))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let redis = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| ClusterError::Config(format!("Redis connection: {e}")))?;
        Ok(Self { client, redis, prefix: prefix.to_owned() })
    }

    fn node_key(&self, id: &NodeId) -> String {
        format!("{}:node:{id}", self.prefix)
    }

    fn origin_key(&self, event: &EventId) -> String {
        format!("{}:origin:{event}", self.prefix)
    }

    /// The channel control messages of `event` are published on.
    pub fn event_channel(&self, event: &EventId) -> String {
        format!("{}:event:{event}", self.prefix)
    }

    /// The pattern of every event's channel.
    pub fn events_pattern(&self) -> String {
        format!("{}:event:*", self.prefix)
    }

    /// The event a channel name is about.
    pub fn event_of_channel(&self, channel: &str) -> Option<EventId> {
        let id = channel.strip_prefix(&self.prefix)?.strip_prefix(":event:")?;
        EventId::parse(id).ok()
    }

    /// The keys matching `pattern` (SCAN, never KEYS: Redis goes on serving meanwhile).
    async fn scan(&self, pattern: String, what: &str) -> Result<Vec<String>, ClusterError> {
        let mut redis = self.redis.clone();
        bounded(what, async {
            let mut keys = Vec::new();
            let mut iter = redis.scan_match::<_, String>(pattern).await?;
            while let Some(key) = futures_util::StreamExt::next(&mut iter).await {
                keys.push(key?);
            }
            Ok(keys)
        })
        .await
    }

    /// Publish this node's record for `ttl`.
    pub async fn heartbeat(&self, node: &NodeInfo, ttl: Duration) -> Result<(), ClusterError> {
        let json = serde_json::to_string(node).map_err(|e| ClusterError::Redis(e.to_string()))?;
        let mut redis = self.redis.clone();
        let key = self.node_key(&node.id);
        bounded("heartbeat", redis.pset_ex::<_, _, ()>(key, json, ttl.as_millis() as u64)).await
    }

    /// Remove this node's record (a clean shutdown: it is gone at once, not after its TTL).
    pub async fn leave(&self, id: &NodeId) -> Result<(), ClusterError> {
        let mut redis = self.redis.clone();
        bounded("leave", redis.del::<_, ()>(self.node_key(id))).await
    }

    /// Every node whose record has not expired, by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let keys = self.scan(format!("{}:node:*", self.prefix), "list nodes").await?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut redis = self.redis.clone();
        let values: Vec<Option<String>> = bounded("read nodes", redis.mget(&keys)).await?;
        let mut nodes: Vec<NodeInfo> =
            values.into_iter().flatten().filter_map(|json| serde_json::from_str(&json).ok()).collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(nodes)
    }

    /// Who holds the origin lease of `event`, if anyone.
    pub async fn origin(&self, event: &EventId) -> Result<Option<NodeId>, ClusterError> {
        let mut redis = self.redis.clone();
        let holder: Option<String> = bounded("read a lease", redis.get(self.origin_key(event))).await?;
        Ok(holder.and_then(|h| NodeId::parse(&h).ok()))
    }

    /// Take the origin lease of `event` for `me` if nobody holds it; returns the holder (`me`
    /// when taken or already held).
    pub async fn claim(&self, event: &EventId, me: &NodeId, ttl: Duration) -> Result<NodeId, ClusterError> {
        let mut redis = self.redis.clone();
        let key = self.origin_key(event);
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        let taken: Option<String> =
            bounded("take a lease", redis.set_options(&key, me.as_str(), options)).await?;
        if taken.is_some() {
            return Ok(me.clone());
        }
        match self.origin(event).await? {
            Some(holder) => {
                if &holder == me {
                    self.renew(event, me, ttl).await?;
                }
                Ok(holder)
            }
            // It expired between the two calls: try once more.
            None => {
                let mut redis = self.redis.clone();
                let options = redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
                let taken: Option<String> =
                    bounded("take a lease", redis.set_options(&key, me.as_str(), options)).await?;
                match taken {
                    Some(_) => Ok(me.clone()),
                    None => self.origin(event).await?.ok_or_else(|| {
                        ClusterError::Redis(format!("the origin lease of {event} changes too fast"))
                    }),
                }
            }
        }
    }

    /// Renew `me`'s lease of `event`; false when `me` does not hold it (any more).
    pub async fn renew(&self, event: &EventId, me: &NodeId, ttl: Duration) -> Result<bool, ClusterError> {
        let mut redis = self.redis.clone();
        let script = redis::Script::new(RENEW);
        let mut call = script.key(self.origin_key(event));
        call.arg(me.as_str()).arg(ttl.as_millis() as u64);
        let renewed: i64 = bounded("renew a lease", call.invoke_async(&mut redis)).await?;
        Ok(renewed == 1)
    }

    /// Give up `me`'s lease of `event` (the event ended here).
    pub async fn release(&self, event: &EventId, me: &NodeId) -> Result<(), ClusterError> {
        let mut redis = self.redis.clone();
        let script = redis::Script::new(RELEASE);
        let mut call = script.key(self.origin_key(event));
        call.arg(me.as_str());
        bounded("release a lease", call.invoke_async::<i64>(&mut redis)).await.map(|_| ())
    }

    /// Ask node `id` to drain (`tolk drain`), or to take listeners again.
    pub async fn set_drain(&self, id: &NodeId, drain: bool) -> Result<(), ClusterError> {
        let mut redis = self.redis.clone();
        let key = format!("{}:drain:{id}", self.prefix);
        if drain {
            bounded("drain", redis.set::<_, _, ()>(key, "1")).await
        } else {
            bounded("undrain", redis.del::<_, ()>(key)).await
        }
    }

    /// Whether node `id` was asked to drain.
    pub async fn drain_asked(&self, id: &NodeId) -> Result<bool, ClusterError> {
        let mut redis = self.redis.clone();
        let key = format!("{}:drain:{id}", self.prefix);
        let value: Option<String> = bounded("read the drain flag", redis.get(key)).await?;
        Ok(value.is_some())
    }

    /// Every event with an origin, and the node holding it.
    pub async fn origins(&self) -> Result<Vec<(EventId, NodeId)>, ClusterError> {
        let keys = self.scan(format!("{}:origin:*", self.prefix), "list leases").await?;
        let mut out = Vec::new();
        for key in keys {
            let Some(event) = key.rsplit(':').next().and_then(|id| EventId::parse(id).ok()) else { continue };
            if let Some(holder) = self.origin(&event).await? {
                out.push((event, holder));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Tell every node serving `event`.
    pub async fn publish(&self, event: &EventId, message: &Control) -> Result<(), ClusterError> {
        let json = serde_json::to_string(message).map_err(|e| ClusterError::Redis(e.to_string()))?;
        let mut redis = self.redis.clone();
        bounded("publish", redis.publish::<_, _, ()>(self.event_channel(event), json)).await
    }

    /// A connection subscribed to every event's control channel.
    pub async fn subscribe(&self) -> Result<redis::aio::PubSub, ClusterError> {
        let mut pubsub = bounded("subscribe", self.client.get_async_pubsub()).await?;
        bounded("subscribe", pubsub.psubscribe(self.events_pattern())).await?;
        Ok(pubsub)
    }
}
