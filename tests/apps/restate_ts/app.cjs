// Services written with the official Restate TypeScript SDK (@restatedev/restate-sdk), served
// over HTTP/1.1 in request/response mode: `node app.cjs PORT`, with the SDK on NODE_PATH.
const http = require("node:http");

// The SDK uses Promise.withResolvers (Node.js 22); define it on older runtimes.
Promise.withResolvers ??= function withResolvers() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

const restate = require("@restatedev/restate-sdk");

const tally = restate.object({
  name: "TsTally",
  handlers: {
    add: async (ctx, delta) => {
      const total = ((await ctx.get("total")) ?? 0) + delta;
      ctx.set("total", total);
      return total;
    },
  },
});

const greeter = restate.service({
  name: "TsGreeter",
  handlers: {
    greet: async (ctx, name) => {
      const loud = await ctx.run("shout", () => name.toUpperCase());
      const total = await ctx.objectClient(tally, "greetings").add(1);
      return `hello ${loud} #${total}`;
    },
  },
});

const port = Number(process.argv[2] ?? 9080);
const endpoint = restate.endpoint().bind(tally).bind(greeter);
http.createServer(endpoint.http1Handler()).listen(port, "127.0.0.1");
