//! One way to spread independent work items over the machine's cores.
//!
//! Purpose: the compressed read-only filesystems compress their data
//! independently, block by block. [`pipeline`] runs a function over a slice
//! on scoped worker threads (one per core) while the calling thread takes
//! the results back in input order as they become ready, and can hand the
//! same workers further tasks of a second kind meanwhile (squashfs packs
//! file tails into fragment blocks in file order and has each full one
//! compressed while later files still are). [`map`] is the batch form. The
//! output never depends on the thread count or on scheduling.
//!
//! Scheduling: a worker takes a queued second-kind task first, else the
//! next item, at most `ahead` items beyond the one the caller waits for (so
//! results waiting to be taken back stay bounded). The calling thread mostly
//! waits; its own work (the in-order part) overlaps the workers', so no
//! core idles between phases.
//!
//! Rejected designs: rayon (a new dependency for a few loops, and its
//! parallel iterators have no in-order consumption while running); channels
//! with one thread per phase (a barrier between phases: the cores idle
//! while the last item of a phase finishes); a compressor's own
//! multithreading (libzstd's and liblzma's output depends on the thread
//! count, see `output/codec.rs`).

use anyhow::{anyhow, bail};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};

/// `f` applied to every item, on up to one thread per core; the results in
/// the order of `items`. The first error (in item order) is returned.
pub fn map<T, R, F>(items: &[T], f: F) -> anyhow::Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> anyhow::Result<R> + Sync,
{
    let (out, _) = pipeline(
        items,
        usize::MAX,
        f,
        |()| Ok(()),
        |stream| (0..items.len()).map(|_| stream.next_result()).collect(),
    )?;
    Ok(out)
}

/// What the workers and the calling thread share.
struct State<R, S, Q> {
    /// Items handed to workers so far (in order).
    taken: usize,
    /// Items the caller took back so far.
    consumed: usize,
    results: Vec<Option<anyhow::Result<R>>>,
    /// Second-kind tasks not yet started, with their index.
    queue: VecDeque<(usize, S)>,
    side_results: Vec<Option<anyhow::Result<Q>>>,
    /// The caller is done: no more tasks, items no longer needed.
    closed: bool,
    /// A worker panicked: nothing it had will come.
    panicked: bool,
}

/// The calling thread's side of a [`pipeline`].
pub struct Stream<'a, R, S, Q> {
    state: &'a Mutex<State<R, S, Q>>,
    ready: &'a Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking worker never holds the lock; a poisoned one is still sound.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<R, S, Q> Stream<'_, R, S, Q> {
    /// The next item's result, in item order; waits for it.
    pub fn next_result(&mut self) -> anyhow::Result<R> {
        let mut st = lock(self.state);
        let i = st.consumed;
        if i >= st.results.len() {
            bail!("all {i} results were already taken");
        }
        loop {
            if let Some(r) = st.results[i].take() {
                st.consumed += 1;
                self.ready.notify_all();
                return r;
            }
            if st.panicked {
                bail!("a worker thread panicked");
            }
            st = self.ready.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Queues a second-kind task; its result comes back from [`pipeline`]
    /// in the order of the pushes.
    pub fn push(&mut self, task: S) {
        let mut st = lock(self.state);
        let i = st.side_results.len();
        st.side_results.push(None);
        st.queue.push_back((i, task));
        self.ready.notify_all();
    }
}

/// Marks the state when a worker unwinds, so the caller stops waiting.
struct PanicGuard<'a, R, S, Q>(&'a Mutex<State<R, S, Q>>, &'a Condvar);

impl<R, S, Q> Drop for PanicGuard<'_, R, S, Q> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.0).panicked = true;
            self.1.notify_all();
        }
    }
}

/// Runs `f` over `items` and `side` over the tasks `main` pushes, on one
/// worker thread per core, while `main` runs on the calling thread and
/// takes the items' results back in order ([`Stream::next_result`]). Returns what
/// `main` returned and the side tasks' results in push order; the first
/// error of `main`, then of the side tasks (in push order).
pub fn pipeline<T, R, S, Q, F, G, M, O>(
    items: &[T],
    ahead: usize,
    f: F,
    side: G,
    main: M,
) -> anyhow::Result<(O, Vec<Q>)>
where
    T: Sync,
    R: Send,
    S: Send,
    Q: Send,
    F: Fn(&T) -> anyhow::Result<R> + Sync,
    G: Fn(S) -> anyhow::Result<Q> + Sync,
    M: FnOnce(&mut Stream<'_, R, S, Q>) -> anyhow::Result<O>,
{
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let state = Mutex::new(State {
        taken: 0,
        consumed: 0,
        results: (0..items.len()).map(|_| None).collect(),
        queue: VecDeque::new(),
        side_results: Vec::new(),
        closed: false,
        panicked: false,
    });
    let ready = Condvar::new();
    let work = || {
        let _guard = PanicGuard(&state, &ready);
        let mut st = lock(&state);
        loop {
            if let Some((i, task)) = st.queue.pop_front() {
                drop(st);
                let r = side(task);
                st = lock(&state);
                st.side_results[i] = Some(r);
                ready.notify_all();
            } else if st.closed {
                break;
            } else if st.taken < items.len() && st.taken - st.consumed < ahead.max(1) {
                let i = st.taken;
                st.taken += 1;
                drop(st);
                let r = f(&items[i]);
                st = lock(&state);
                st.results[i] = Some(r);
                ready.notify_all();
            } else {
                st = ready.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        let out = main(&mut Stream {
            state: &state,
            ready: &ready,
        });
        {
            let mut st = lock(&state);
            if out.is_err() {
                // Nothing more is needed: the workers stop after their task.
                st.queue.clear();
            }
            st.closed = true;
            ready.notify_all();
        }
        // The workers drain the queue before they stop.
        let mut panicked = false;
        for h in handles {
            panicked |= h.join().is_err();
        }
        if panicked {
            bail!("a worker thread panicked");
        }
        let out = out?;
        let side_out = std::mem::take(&mut lock(&state).side_results)
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(anyhow!("a task was not run"))))
            .collect::<anyhow::Result<Vec<Q>>>()?;
        Ok((out, side_out))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_errors_propagate() {
        let items: Vec<u32> = (0..1000).collect();
        let out = map(&items, |&i| Ok(i * 2)).unwrap();
        assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        let err = map(&items, |&i| {
            if i == 500 {
                anyhow::bail!("item {i} failed")
            }
            Ok(i)
        })
        .unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
    }

    /// Items come back in order while side tasks pushed from the results
    /// run on the same workers; their results come back in push order.
    #[test]
    fn side_tasks_run_beside_the_items_in_push_order() {
        let items: Vec<u64> = (0..500).collect();
        let (sum, side) = pipeline(
            &items,
            8,
            |&i| Ok(i * 3),
            |t: u64| Ok(t + 1),
            |s| {
                let mut sum = 0;
                for i in 0..items.len() as u64 {
                    let r = s.next_result()?;
                    assert_eq!(r, i * 3);
                    sum += r;
                    if i % 7 == 0 {
                        s.push(r);
                    }
                }
                Ok(sum)
            },
        )
        .unwrap();
        assert_eq!(sum, 3 * 499 * 500 / 2);
        let want: Vec<u64> = (0..500u64)
            .filter(|i| i % 7 == 0)
            .map(|i| i * 3 + 1)
            .collect();
        assert_eq!(side, want);
        // A failing side task fails the whole; so does the caller.
        let err = pipeline(
            &items,
            8,
            |&i| Ok(i),
            |t: u64| {
                if t == 3 {
                    bail!("side {t} failed")
                } else {
                    Ok(t)
                }
            },
            |s| {
                for _ in 0..10 {
                    let r = s.next_result()?;
                    s.push(r);
                }
                Ok(())
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("side 3 failed"), "{err}");
        let err = pipeline(
            &items,
            8,
            |&i| Ok(i),
            |(): ()| Ok(()),
            |_| -> anyhow::Result<()> { bail!("caller gave up") },
        )
        .unwrap_err();
        assert!(err.to_string().contains("caller gave up"), "{err}");
    }

    #[test]
    fn a_panicking_worker_fails_the_pipeline_instead_of_hanging() {
        let items: Vec<u32> = (0..50).collect();
        let r = std::panic::catch_unwind(|| {
            map(&items, |&i| {
                if i == 20 {
                    panic!("boom");
                }
                Ok(i)
            })
        });
        // Either the join reports it or the panic propagates: never a hang.
        if let Ok(r) = r {
            assert!(r.is_err());
        }
    }
}
