import t from 'tap'
import { ReadCache } from '../../lib/broker/read-cache.js'
import type { HistoryPage } from '../../lib/stores/history-store.js'

const page = (offset: number): HistoryPage => ({ epoch: 'e', offset, messages: [] })

t.test('a watched room\'s page is read once until the room\'s next append; other rooms are read every time', async (t) => {
  const cache = new ReadCache()
  let reads = 0
  let offset = 1
  const read = async (): Promise<HistoryPage> => { reads++; return page(offset) }
  t.equal((await cache.get('r', 'since:0', read)).offset, 1)
  t.equal(reads, 1)
  await cache.get('r', 'since:0', read)
  t.equal(reads, 2, 'not watched: not kept')

  cache.watch('r')
  const first = await cache.get('r', 'since:0', read)
  t.equal(await cache.get('r', 'since:0', read), first, 'the same page again')
  t.equal(reads, 3)
  await cache.get('r', 'recent:100', read)
  t.equal(reads, 4, 'another key is another read')

  offset = 2
  cache.appended('r')
  t.equal((await cache.get('r', 'since:0', read)).offset, 2, 'read anew after an append')
  t.equal(reads, 5)
  cache.appended('other')
  await cache.get('r', 'since:0', read)
  t.equal(reads, 5, 'an append elsewhere changes nothing')

  cache.unwatch('r')
  await cache.get('r', 'since:0', read)
  t.equal(reads, 6, 'unwatched: read every time')
})

t.test('a read that began before an append is not handed out after it', async (t) => {
  const cache = new ReadCache()
  cache.watch('r')
  let release: (p: HistoryPage) => void = () => {}
  const slow = cache.get('r', 'since:0', async () => await new Promise<HistoryPage>((resolve) => { release = resolve }))
  const joined = cache.get('r', 'since:0', async () => page(99))
  cache.appended('r')
  release(page(1))
  t.equal((await slow).offset, 1)
  t.equal((await joined).offset, 1, 'asked before the append: shares the read in flight')
  t.equal((await cache.get('r', 'since:0', async () => page(2))).offset, 2, 'asked after it: a new read')
})

t.test('a failed read is not kept; a room keeps a handful of pages at most', async (t) => {
  const cache = new ReadCache()
  cache.watch('r')
  await t.rejects(cache.get('r', 'k', async () => { throw new Error('down') }), /down/)
  t.equal((await cache.get('r', 'k', async () => page(3))).offset, 3, 'the next ask reads again')
  let reads = 0
  for (let i = 0; i < 20; i++) await cache.get('r', `since:${i}`, async () => { reads++; return page(i) })
  for (let i = 0; i < 20; i++) await cache.get('r', `since:${i}`, async () => { reads++; return page(i) })
  t.ok(reads > 20 && reads < 40, `the first pages are kept, the rest read each time (${reads} reads)`)
})
