"""Collectors: each returns its data or a :class:`scanner.snapshot.NotCollected` reason — a failed source is never an
empty list.

Tenant-wide, once per scan (:mod:`.tenant`): accepted domains (:mod:`.domains`), registration details
(:mod:`.registration`), directory roles incl. PIM eligibility (:mod:`.roles`), OAuth grants with app names and
publisher verification (:mod:`.oauth_grants`), and the Exchange bulk reads Get-Mailbox / Get-CASMailbox /
Get-RecipientPermission / Get-BlockedSenderAddress (:mod:`.exchange`).

Per account, a chunk of 20 at a time (:mod:`.account`): users (:mod:`.users`), forwarding (:mod:`.forwarding`),
inbox rules merged with hidden rules (:mod:`.inbox_rules`), folders (:mod:`.folders`), authentication methods
(:mod:`.auth_methods`), delegates (:mod:`.delegates`), sending, protocols (:mod:`.protocols`).

Which permission each needs: :mod:`scanner.permissions`. Orchestration: :func:`scanner.sweep.run_scan`.
"""
