//! [`ClientBuilder::balance`]: one client over several equivalent
//! endpoints, a pool per endpoint, the call sent to the one likely to
//! answer soonest; and [`ClientBuilder::balance_hedged`], with late calls
//! hedged.

use super::{ClientBuilder, Multiplexer, RetrySetting, Stack, TimeoutSetting};
use crate::balance::{Balance, BalanceConfig, BalanceError, Parts};
use crate::hedge::{Hedge, HedgeConfig};
use crate::pool::Pool;
use crate::reconnect::{Reconnect, ReconnectConfig};
use crate::route::Accrual;
use crate::transport::Target;
use std::fmt;
use tower::Layer;

/// The stack of one endpoint of a [balanced](ClientBuilder::balance)
/// client for requests `Req`: your layers over an [`Accrual`] (each
/// attempt recorded against the endpoint's health) over a [`Pool`] of
/// [`Reconnect`]s of the connection services of the builder's
/// [`Multiplexer`] `X` over its connector `M`'s transports.
pub type BalancedEndpoint<Req, L, M, X> =
    <L as Layer<Accrual<Pool<Reconnect<<X as Multiplexer<M, Req>>::Connection>>>>>::Service;

/// What [`ClientBuilder::balance`] builds: the builder's deadline and retry
/// over a [`Balance`] of [`BalancedEndpoint`]s.
pub type Balanced<Req, L, T, R, M, X> = Stack<
    <T as TimeoutSetting>::Service<<R as RetrySetting>::Service<Balance<BalancedEndpoint<Req, L, M, X>>>>,
>;

/// What [`ClientBuilder::balance_hedged`] builds: the builder's deadline
/// and retry over a [`Hedge`] over a [`Balance`] of [`BalancedEndpoint`]s.
pub type Hedged<Req, L, T, R, M, X> = Stack<
    <T as TimeoutSetting>::Service<
        <R as RetrySetting>::Service<Hedge<Balance<BalancedEndpoint<Req, L, M, X>>>>,
    >,
>;

impl<C, L, T, R, K, M, X> ClientBuilder<C, L, T, R, K, M, X> {
    /// How a [balanced](Self::balance) client chooses its endpoints and
    /// ejects them (default [`BalanceConfig::default`]: peak-EWMA).
    pub fn balancing(mut self, config: BalanceConfig) -> Self {
        self.routing.balance = config;
        self
    }

    /// When a [hedged](Self::balance_hedged) client sends a second copy,
    /// and how many (default [`HedgeConfig::default`]).
    pub fn hedging(mut self, config: HedgeConfig) -> Self {
        self.routing.hedge = config;
        self
    }
}

impl<C, L, T, R, M, X> ClientBuilder<C, L, T, R, ReconnectConfig, M, X>
where
    Self: Clone + Send + Sync + 'static,
{
    /// Builds one client over several equivalent endpoints (replicas, or
    /// any servers that can each answer any request): each call goes to
    /// the one its [balancer](crate::balance) chooses
    /// ([`balancing`](Self::balancing)), over a stack of its own with a
    /// [pool](Self::pool) of connections at its bottom and your layers
    /// above; the deadline and the retry layer go around the balancer, so
    /// that a retry chooses again. An endpoint is named by its address as
    /// written (`Display`); [`Stack::balance_handle`] adds and removes
    /// endpoints at run time (by address) and reads their load.
    ///
    /// Connects in the background, as [`connect_lazy`](Self::connect_lazy)
    /// does. Fails if `targets` names one twice; none is fine (calls fail
    /// with [`BalanceError::NoEndpoints`] until one is added). Must be
    /// called within a Tokio runtime.
    pub fn balance<Req, A>(
        self,
        targets: impl IntoIterator<Item = A>,
    ) -> Result<Balanced<Req, L, T, R, M, X>, BalanceError>
    where
        A: fmt::Display,
        Req: 'static,
        X: Multiplexer<M, Req>,
        M: Clone,
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<Accrual<Pool<Reconnect<X::Connection>>>> + Clone + Send + 'static,
        L::Service: Send + Sync + 'static,
    {
        let balance = self.balancer::<Req, A>(targets)?;
        let handle = balance.handle();
        let (retried, retry) = self.retry.wrap(balance);
        Ok(Stack::new(self.timeout.wrap(retried), None, retry).with_balance(handle, None))
    }

    /// [`balance`](Self::balance), with a [`Hedge`] over the balancer
    /// ([`hedging`](Self::hedging)): a late [idempotent](crate::retry::Idempotent)
    /// call's second copy goes to another endpoint, the first answer taken.
    /// The hedge draws its copies from its own budget and from the retry
    /// layer's, which the two share: retries and hedges together stay
    /// within the retry budget. [`Stack::hedge_stats`] counts them.
    pub fn balance_hedged<Req, A>(
        self,
        targets: impl IntoIterator<Item = A>,
    ) -> Result<Hedged<Req, L, T, R, M, X>, BalanceError>
    where
        A: fmt::Display,
        Req: 'static,
        X: Multiplexer<M, Req>,
        M: Clone,
        T: TimeoutSetting,
        R: RetrySetting,
        L: Layer<Accrual<Pool<Reconnect<X::Connection>>>> + Clone + Send + 'static,
        L::Service: Send + Sync + 'static,
    {
        let balance = self.balancer::<Req, A>(targets)?;
        let handle = balance.handle();
        let budget = self.retry.shared_budget();
        let mut hedge = Hedge::new(balance, self.routing.hedge.clone());
        if let Some(budget) = budget.clone() {
            hedge = hedge.sharing(budget);
        }
        let hedges = hedge.handle();
        let (retried, retry) = self.retry.wrap_sharing(hedge, budget);
        Ok(Stack::new(self.timeout.wrap(retried), None, retry).with_balance(handle, Some(hedges)))
    }

    /// The balancer over `targets`, able to make more endpoints by address.
    fn balancer<Req, A>(
        &self,
        targets: impl IntoIterator<Item = A>,
    ) -> Result<Balance<BalancedEndpoint<Req, L, M, X>>, BalanceError>
    where
        A: fmt::Display,
        Req: 'static,
        X: Multiplexer<M, Req>,
        M: Clone,
        L: Layer<Accrual<Pool<Reconnect<X::Connection>>>> + Clone + Send + 'static,
    {
        let builder = self.clone();
        let make = move |address: &str| {
            let connector = builder.connections::<Req>();
            let config = builder.reconnect.clone();
            let target = address.to_string();
            let pool = Pool::new(
                move || Reconnect::new(connector.clone(), Target::new(target.clone()), config.clone()),
                builder.routing.pool,
            );
            let health = builder.routing.balance.health.clone();
            let layer = builder.layer.clone();
            Parts {
                pool: Some(pool.handle()),
                stack: Box::new(move |info| layer.layer(Accrual::new(pool, info, health))),
            }
        };
        let balance = Balance::empty(self.routing.balance.clone(), Some(Box::new(make)));
        for target in targets {
            balance.add(&target.to_string())?;
        }
        Ok(balance)
    }
}
