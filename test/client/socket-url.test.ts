import t from 'tap'
import { socketUrl } from '../../lib/client/socket-url.js'

t.test('the app\'s params go over the URL\'s, and the client\'s own over both', async (t) => {
  const base = new URL('ws://h/chat?token=old&room=stale&since=e:1&resume=old&keep=1')
  const url = new URL(socketUrl(base, { token: 'new', name: 'app' }, { name: 'alice', resume: 'r1', first: { room: 'lobby', since: { epoch: 'e', offset: 7 } } }))
  t.equal(url.pathname, '/chat')
  t.same(Object.fromEntries(url.searchParams), { token: 'new', keep: '1', name: 'alice', resume: 'r1', room: 'lobby', since: 'e:7' })
  t.equal(base.searchParams.get('token'), 'old', 'the base is left alone')
})

t.test('without a name, resume or first room, none is sent', async (t) => {
  const url = new URL(socketUrl(new URL('ws://h/chat?room=x&resume=y&since=z'), {}, { name: null, resume: null, first: undefined }))
  t.same(Object.fromEntries(url.searchParams), {})
  const noSince = new URL(socketUrl(new URL('ws://h/chat'), {}, { name: null, resume: null, first: { room: 'a', since: undefined } }))
  t.same(Object.fromEntries(noSince.searchParams), { room: 'a' })
})
