import t from 'tap'
import { Identity } from '../../lib/client/identity.js'

t.test('starts from the name and resume given, then takes each welcome\'s', async (t) => {
  const me = new Identity('alice', 'r0')
  t.match(me, { id: null, clientId: null, expiresAt: null, name: 'alice', resume: 'r0' })
  me.welcome({ type: 'welcome', id: 'u1', clientId: 'c1', name: 'alice2', resume: 'r1', expiresAt: 42 })
  t.match(me, { id: 'u1', clientId: 'c1', expiresAt: 42, name: 'alice2', resume: 'r1' })
  me.welcome({ type: 'welcome', id: 'u1', clientId: 'c2', name: 'alice2' })
  t.match(me, { clientId: 'c2', expiresAt: null, resume: null }, 'a welcome without them: no expiry, no token')
})
