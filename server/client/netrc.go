package client

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
)

// NetrcCredentials returns the login and password ~/.netrc (or the file
// at path, when not empty) gives for host, as curl and httpie read it:
// the first "machine host" entry, else "default". ok is false when the
// file is missing or names neither.
func NetrcCredentials(path, host string) (login, password string, ok bool) {
	if path == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", false
		}
		path = filepath.Join(home, ".netrc")
	}
	f, err := os.Open(path)
	if err != nil {
		return "", "", false
	}
	defer f.Close()
	var tokens []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, strings.Fields(line)...)
	}
	type entry struct{ login, password string }
	var def *entry
	var cur *entry
	match := false
	for i := 0; i < len(tokens); i++ {
		next := func() string {
			if i+1 < len(tokens) {
				i++
				return tokens[i]
			}
			return ""
		}
		switch tokens[i] {
		case "machine":
			if match && cur != nil {
				return cur.login, cur.password, true
			}
			match = next() == host
			cur = &entry{}
		case "default":
			if match && cur != nil {
				return cur.login, cur.password, true
			}
			match = false
			def = &entry{}
			cur = def
		case "login":
			if cur != nil {
				cur.login = next()
			}
		case "password":
			if cur != nil {
				cur.password = next()
			}
		case "account", "port":
			next()
		case "macdef":
			// A macro runs to the end of its paragraph; its words are not
			// tokens of entries. Skipping the name is enough in practice.
			next()
		}
	}
	if match && cur != nil {
		return cur.login, cur.password, true
	}
	if def != nil {
		return def.login, def.password, true
	}
	return "", "", false
}
