package remote

import (
	"context"
	"fmt"
)

// Sealer encrypts the secrets of remotes at rest: passwords, client keys
// and proxy URLs (which may hold credentials). Open must read both what
// Seal wrote and values stored before a Sealer was configured.
type Sealer interface {
	Seal(plain string) (string, error)
	Open(stored string) (string, error)
}

// SetSealer makes the Store seal secrets as it writes them and open them
// as it reads them; nil stores them as they are. Set it before use.
func (s *Store) SetSealer(se Sealer) { s.sealer = se }

// secretFields are the stored fields a Sealer protects.
func (r *Remote) secretFields() []*string {
	return []*string{&r.Password, &r.SSLClientKey, &r.ProxyURL}
}

func (p *PullThroughRemote) secretFields() []*string {
	return []*string{&p.Password, &p.SSLClientKey, &p.ProxyURL}
}

// seal seals fields in place.
func (s *Store) seal(fields []*string) error {
	if s.sealer == nil {
		return nil
	}
	for _, f := range fields {
		v, err := s.sealer.Seal(*f)
		if err != nil {
			return fmt.Errorf("seal a remote's secret: %w", err)
		}
		*f = v
	}
	return nil
}

// open opens fields in place.
func (s *Store) open(fields []*string) error {
	if s.sealer == nil {
		return nil
	}
	for _, f := range fields {
		v, err := s.sealer.Open(*f)
		if err != nil {
			return fmt.Errorf("open a remote's secret: %w", err)
		}
		*f = v
	}
	return nil
}

// sealedCopy returns a copy of r with its secrets sealed, to write.
func (s *Store) sealedCopy(r *Remote) (*Remote, error) {
	c := *r
	return &c, s.seal(c.secretFields())
}

// Reseal writes every remote's secrets again with the Sealer's current
// key, after a key rotation, and returns how many remotes it wrote.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	if s.sealer == nil {
		return 0, nil
	}
	n := 0
	for offset := 0; ; offset += 1000 {
		rs, _, err := s.List(ctx, Filter{Limit: 1000, Offset: offset})
		if err != nil {
			return n, err
		}
		for i := range rs {
			c, err := s.sealedCopy(&rs[i])
			if err != nil {
				return n, err
			}
			if _, err := s.db.NewUpdate().Model(c).ModelTableExpr("remotes AS remote").
				Column("password", "ssl_client_key", "proxy_url").Where("id = ?", c.ID).Exec(ctx); err != nil {
				return n, err
			}
			n++
		}
		if len(rs) < 1000 {
			break
		}
	}
	ps, _, err := s.ListPullThrough(ctx, Filter{Limit: 1000})
	if err != nil {
		return n, err
	}
	for i := range ps {
		c := ps[i]
		if err := s.seal(c.secretFields()); err != nil {
			return n, err
		}
		if _, err := s.db.NewUpdate().Model(&c).Column("password", "ssl_client_key", "proxy_url").WherePK().Exec(ctx); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
