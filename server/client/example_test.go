package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/mooring-dev/mooring/server/client"
)

// A sync, waited for, by names: the client finds the hrefs.
func Example() {
	ctx := context.Background()
	user, password, _ := client.NetrcCredentials("", "localhost")
	c := client.New(client.DefaultURL, client.WithBasicAuth(user, password))
	repo, err := c.CreateRepository(ctx, client.RepositoryRequest{Name: "foo"})
	if err != nil {
		log.Fatal(err) // a *client.Error: the API's messages by field
	}
	rm, err := c.RemoteByName(ctx, "library/busybox")
	if err != nil {
		log.Fatal(err)
	}
	ref, err := c.Sync(ctx, rm.Href, client.SyncRequest{Repository: repo.Href})
	if err != nil {
		log.Fatal(err)
	}
	t, err := c.WaitTask(ctx, ref.Task, time.Second, func(t *client.Task) {
		for _, r := range t.ProgressReports {
			fmt.Printf("%s: %d/%d\n", r.Message, r.Done, r.Total)
		}
	})
	if err == nil {
		err = t.Err() // a *client.TaskError when the sync failed
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("created", t.CreatedResources)
}
