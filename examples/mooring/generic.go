package main

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"
)

// bodyFlag is a command-line flag that sets one field of a request body:
// a string, a list, a number or a boolean, or the href of another
// resource's object given by name (ref).
type bodyFlag struct {
	flag, key, usage string
	kind             string // "string", "list", "int", "bool"
	ref              *resource
}

// bodyFlags registers flags and returns a function building the body from
// those given.
func (a *app) bodyFlags(cmd *cobra.Command, flags []bodyFlag) func(ctx context.Context) (map[string]any, error) {
	strs := map[string]*string{}
	lists := map[string]*[]string{}
	ints := map[string]*int{}
	bools := map[string]*bool{}
	for _, f := range flags {
		switch f.kind {
		case "list":
			lists[f.flag] = cmd.Flags().StringSlice(f.flag, nil, f.usage)
		case "int":
			ints[f.flag] = cmd.Flags().Int(f.flag, 0, f.usage)
		case "bool":
			bools[f.flag] = cmd.Flags().Bool(f.flag, false, f.usage)
		default:
			strs[f.flag] = cmd.Flags().String(f.flag, "", f.usage)
		}
	}
	return func(ctx context.Context) (map[string]any, error) {
		body := map[string]any{}
		for _, f := range flags {
			if !cmd.Flags().Changed(f.flag) {
				continue
			}
			switch f.kind {
			case "list":
				body[f.key] = *lists[f.flag]
			case "int":
				body[f.key] = *ints[f.flag]
			case "bool":
				body[f.key] = *bools[f.flag]
			default:
				v := *strs[f.flag]
				if f.ref != nil {
					href, err := a.href(ctx, *f.ref, v)
					if err != nil {
						return nil, err
					}
					v = href
				}
				body[f.key] = v
			}
		}
		return body, nil
	}
}

// createCommand is "<kind> create NAME" with flags setting the body.
func (a *app) createCommand(r resource, use string, flags []bodyFlag) *cobra.Command {
	cmd := &cobra.Command{Use: "create NAME " + use, Short: "Create a " + r.kind, Args: exactArgs(1, "NAME")}
	body := a.bodyFlags(cmd, flags)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		b, err := body(cmd.Context())
		if err != nil {
			return err
		}
		b["name"] = args[0]
		var obj map[string]any
		if err := a.c.Do(cmd.Context(), http.MethodPost, r.path, b, &obj); err != nil {
			return err
		}
		return a.created(obj, r.kind, args[0])
	}
	return cmd
}

// updateCommand is "<kind> update NAME": the flags given are the fields
// changed (PATCH).
func (a *app) updateCommand(r resource, flags []bodyFlag) *cobra.Command {
	cmd := &cobra.Command{Use: "update NAME", Short: "Change a " + r.kind + ": the fields given", Args: exactArgs(1, "NAME"),
		ValidArgsFunction: a.completeNames(r)}
	body := a.bodyFlags(cmd, append(flags, bodyFlag{flag: "name", key: "name", usage: "new name"}))
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		href, err := a.href(cmd.Context(), r, args[0])
		if err != nil {
			return err
		}
		b, err := body(cmd.Context())
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := a.c.Do(cmd.Context(), http.MethodPatch, href, b, &obj); err != nil {
			return err
		}
		return a.created(obj, "", "")
	}
	return cmd
}

// crud is a resource's list, show, create, update and delete, from its
// descriptor and the flags of its fields.
func (a *app) crud(r resource, createUse string, flags []bodyFlag, listFilters ...string) []*cobra.Command {
	return []*cobra.Command{a.listCommand(r, listFilters...), a.showCommand(r), a.createCommand(r, createUse, flags),
		a.updateCommand(r, flags), a.deleteCommand(r)}
}
