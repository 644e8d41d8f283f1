// BullMQ peer for the I/O figure: N jobs that each wait MS milliseconds, one Node process
// running them with `concurrency` C. Prints {"rate": jobs per second from the first start to
// the last finish}. Usage: NODE_PATH=<folder>/node_modules node bullmq_io.cjs REDIS_URL N C MS.
const { Queue, Worker } = require("bullmq");

async function main() {

  const [url, jobs, concurrency, ms] = process.argv.slice(2);
  const parsed = new URL(url);
  const connection = {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.slice(1) || 0),
    maxRetriesPerRequest: null,
  };
  const total = Number(jobs);
  const queue = new Queue("bench-io", { connection });
  await queue.obliterate({ force: true });
  await queue.addBulk(
    Array.from({ length: total }, (_, i) => ({
      name: "wait",
      data: { i },
      opts: { removeOnComplete: true, removeOnFail: true },
    })),
  );
  let first = 0;
  let last = 0;
  let done = 0;
  const finished = new Promise((resolve) => {
    const worker = new Worker(
      "bench-io",
      async () => {
        if (!first) first = Date.now();
        await new Promise((wake) => setTimeout(wake, Number(ms)));
        last = Date.now();
      },
      { connection, concurrency: Number(concurrency) },
    );
    worker.on("completed", () => {
      done += 1;
      if (done === total) resolve(worker);
    });
  });
  const worker = await finished;
  console.log(JSON.stringify({ rate: total / ((last - first) / 1000) }));
  await worker.close();
  await queue.close();
}

main().then(() => process.exit(0));
