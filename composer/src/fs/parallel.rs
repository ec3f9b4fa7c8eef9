//! One way to spread independent work items over the machine's cores.
//!
//! Purpose: the compressed read-only filesystems (squashfs) compress their
//! data blocks independently; [`map`] runs a function over a slice on
//! scoped threads (one per core) and returns the results in input order, so
//! the output never depends on the thread count or on scheduling.
//!
//! Rejected designs: rayon (a new dependency for one loop); a compressor's
//! own multithreading (libzstd's and liblzma's output depends on the thread
//! count, see `output/codec.rs`).

use anyhow::anyhow;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` applied to every item, on up to one thread per core; the results in
/// the order of `items`. The first error (in item order) is returned.
pub fn map<T, R, F>(items: &[T], f: F) -> anyhow::Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> anyhow::Result<R> + Sync,
{
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done: Vec<(usize, anyhow::Result<R>)> = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let r = f(item);
            let failed = r.is_err();
            done.push((i, r));
            if failed {
                // Stop handing out work: the build fails anyway.
                next.store(items.len(), Ordering::Relaxed);
                break;
            }
        }
        done
    };
    let mut slots: Vec<Option<anyhow::Result<R>>> = (0..items.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        for h in handles {
            let done = h.join().map_err(|_| anyhow!("a worker thread panicked"))?;
            for (i, r) in done {
                slots[i] = Some(r);
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    let mut out = Vec::with_capacity(items.len());
    for slot in slots {
        match slot {
            Some(r) => out.push(r?),
            // Only after an earlier error stopped the workers.
            None => return Err(anyhow!("a worker stopped before finishing its items")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_input_order_and_errors_propagate() {
        let items: Vec<u32> = (0..1000).collect();
        let out = super::map(&items, |&i| Ok(i * 2)).unwrap();
        assert_eq!(out, (0..1000).map(|i| i * 2).collect::<Vec<_>>());
        let err = super::map(&items, |&i| {
            if i == 500 {
                anyhow::bail!("item {i} failed")
            }
            Ok(i)
        })
        .unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
    }
}
